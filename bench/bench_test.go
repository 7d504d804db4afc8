package bench

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/minioserver"
)

// tiny is a run small enough for `go test -race`: every workload and
// baseline, a few MiB.
func tiny(t *testing.T) Config {
	c := Defaults()
	c.Headline = ProduceCase{RecordBytes: 1024, Partitions: 2, Acks: "1", BatchBytes: 64 << 10}
	c.Variants = []ProduceCase{{RecordBytes: 1024, Partitions: 2, Acks: "all", BatchBytes: 64 << 10}}
	c.ProduceBytes = 2 << 20
	c.ColdBytes = 1 << 20
	c.ColdSegmentBytes = 128 << 10
	c.ColdPartitions = 2
	c.ChunkBytes = 32 << 10
	c.Readahead = 1
	c.TaskInterval = 50 * time.Millisecond
	c.LatencyRate = 200
	c.LatencyDuration = time.Second
	c.ManyPartitions = []int{1, 4}
	c.ManyBytes = 256 << 10
	c.MinPhase = 500 * time.Millisecond
	c.Dir = t.TempDir()
	c.Out = filepath.Join(t.TempDir(), "out")
	return c
}

func runTiny(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteFiles(cfg.Out); err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, cfg.Out)
	return rep
}

func TestRunTinyFilesystem(t *testing.T) {
	runTiny(t, tiny(t))
}

func TestRunTinyMinIO(t *testing.T) {
	if _, err := minioserver.FindBinary(); err != nil {
		if os.Getenv(minioserver.EnvRequire) == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cfg := tiny(t)
	cfg.S3 = true
	rep := runTiny(t, cfg)
	if rep.Cost.Requests["PutObject"] == 0 || rep.Cost.Requests["GetObject"] == 0 {
		t.Fatalf("S3 requests %v: want PutObject and GetObject", rep.Cost.Requests)
	}
}

// checkReport asserts the report's structure and that every baseline ran.
func checkReport(t *testing.T, r *Report, out string) {
	t.Helper()
	b := r.Baselines
	for name, rt := range map[string]Rate{"raw sink": b.RawSink, "raw sendfile": b.RawSendfile, "raw GETs": b.RawGet, "raw PUTs": b.RawPut, "upload": r.Upload} {
		if rt.Bytes <= 0 || rt.MBps <= 0 {
			t.Errorf("%s did not run: %+v", name, rt)
		}
	}
	if b.RawGet.Concurrency != r.Config.ColdPartitions*(1+r.Config.Readahead) {
		t.Errorf("raw GET concurrency %d", b.RawGet.Concurrency)
	}
	for name, tp := range map[string]Throughput{
		"produce kfake": r.ProduceKfake, "hot consume": r.HotConsume, "hot consume kfake": r.HotConsumeKfake,
		"hot consume, sendfile off": r.HotConsumeCopy, "cold replay": r.ColdReplay, "warm replay": r.WarmReplay,
	} {
		if tp.Records <= 0 || tp.PayloadBytes <= 0 || tp.Seconds <= 0 {
			t.Errorf("%s did not run: %+v", name, tp)
		}
	}
	if len(r.Produce) != 1+len(r.Config.Variants) {
		t.Errorf("%d produce results, want %d", len(r.Produce), 1+len(r.Config.Variants))
	}
	if r.HotConsumeSendfileBytes <= 0 || r.HotConsumeCopiedBytes <= 0 {
		t.Errorf("sendfile bytes %d with sendfile on, copied bytes %d with it off", r.HotConsumeSendfileBytes, r.HotConsumeCopiedBytes)
	}
	if r.ColdCacheEntriesBefore != 0 || r.ColdReplay.LogBytes <= 0 || r.WarmCacheHits <= 0 {
		t.Errorf("cold replay: cache entries before %d, remote bytes %d; warm cache hits %d", r.ColdCacheEntriesBefore, r.ColdReplay.LogBytes, r.WarmCacheHits)
	}
	if r.Latency.Records == 0 || r.Latency.P50 <= 0 || r.Latency.P999 < r.Latency.P50 {
		t.Errorf("latency %+v", r.Latency.Quantiles)
	}
	if r.TimeToTier.Segments == 0 {
		t.Error("no time to tier")
	}
	if len(r.Many) != len(r.Config.ManyPartitions) {
		t.Errorf("many partitions: %d results", len(r.Many))
	}
	for _, phase := range []string{"produce-strata", "produce-kfake", "consume-sendfile", "consume-copy", "consume-kfake", "raw-sendfile", "cold-replay"} {
		if _, ok := r.cpu(phase); !ok {
			t.Errorf("no CPU measurement of %s", phase)
		}
	}
	c := r.Cost
	if !c.CheckOK || c.IngestedBytes <= 0 || c.IngestPuts <= 0 || c.ReplayGets <= 0 || c.StoredBytes < c.LogBytes || c.LogBytes <= 0 {
		t.Errorf("cost: %+v", c)
	}
	if c.DollarsPerGBIngested <= 0 || c.DollarsPerGBReplayed <= 0 || c.DiskDollarsPerTBMonth <= c.S3DollarsPerTBMonth {
		t.Errorf("cost per GB: %+v", c)
	}
	// Every target of the issue has a row with a verdict.
	targets := map[string]bool{}
	for _, f := range r.Figures {
		if f.Target != "" {
			if f.Pass == nil {
				t.Errorf("figure %q has a target and no verdict", f.Name)
			}
			targets[f.Name+" vs "+f.Baseline] = true
		}
		if f.Baseline != "" && f.BaselineValue <= 0 {
			t.Errorf("figure %q: baseline %q has no value", f.Name, f.Baseline)
		}
	}
	if len(targets) != 8 {
		t.Errorf("%d figures with targets, want 8: %v", len(targets), targets)
	}
	md := r.Markdown()
	if !strings.Contains(md, "| figure | value | baseline | baseline value | ratio | target | result |") {
		t.Errorf("markdown has no summary table:\n%s", md)
	}
	var back Report
	j, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(back.Figures) != len(r.Figures) {
		t.Errorf("report.json has %d figures, want %d", len(back.Figures), len(r.Figures))
	}
	for _, name := range []string{"throughput.svg", "latency-cdf.svg", "cost-retention.svg", "consume-sendfile.pprof", "report.md"} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v", name, err)
		}
		if strings.HasSuffix(name, ".svg") && !strings.HasPrefix(string(b), "<svg") {
			t.Errorf("%s is not SVG", name)
		}
	}
}

func TestS3Operation(t *testing.T) {
	for _, c := range []struct{ method, target, want string }{
		{"PUT", "/b/k/x.log", "PutObject"},
		{"PUT", "/b/k?partNumber=1&uploadId=u", "UploadPart"},
		{"POST", "/b/k?uploads", "CreateMultipartUpload"},
		{"POST", "/b/k?uploadId=u", "CompleteMultipartUpload"},
		{"GET", "/b/k", "GetObject"},
		{"GET", "/b?list-type=2&prefix=p", "ListObjectsV2"},
		{"HEAD", "/b/k", "HeadObject"},
		{"DELETE", "/b/k", "DeleteObject"},
		{"DELETE", "/b/k?uploadId=u", "AbortMultipartUpload"},
	} {
		if got := s3Operation(httptest.NewRequest(c.method, c.target, nil)); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.target, got, c.want)
		}
	}
}

func TestHistQuantile(t *testing.T) {
	bounds := []float64{1, 2, 4}
	counts := []uint64{0, 10, 10}
	if q := histQuantile(0.5, bounds, counts, 10); q != 1.5 {
		t.Errorf("p50 %v, want 1.5", q)
	}
}
