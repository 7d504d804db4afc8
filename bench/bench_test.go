package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/minioserver"
)

// tiny is a run small enough for `go test -race`: every workload and
// baseline, a few MiB.
func tiny(t *testing.T) Config {
	c := Defaults()
	c.Headline = ProduceCase{RecordBytes: 1024, Partitions: 2, Acks: "1", BatchBytes: 64 << 10}
	c.Variants = []ProduceCase{{RecordBytes: 1024, Partitions: 2, Acks: "all", BatchBytes: 64 << 10},
		{RecordBytes: 1024, Partitions: 2, Acks: "1", BatchBytes: 64 << 10, Compression: "lz4"},
		{RecordBytes: 1024, Partitions: 2, Acks: "1", BatchBytes: 64 << 10, Compression: "zstd"}}
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
	c.CompactBytes = 2 << 20
	c.MinPhase = 500 * time.Millisecond
	c.IsoCacheBytes = 256 << 10
	c.IsoChunkBytes = 32 << 10
	c.IsoReplayBytes = 1536 << 10
	c.IsoHotBytes = 64 << 10
	c.IsoRate = 200
	c.IsoWindow = time.Second
	c.Dir = t.TempDir()
	c.Out = filepath.Join(t.TempDir(), "out")
	c.StrataBinary = strataForTest(t)
	return c
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// strataForTest builds cmd/strata (without -race: it is the child-process
// broker whose CPU the run measures) once for the package's tests.
func strataForTest(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "strata-bench-test-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "strata"), "github.com/stratalog/strata/cmd/strata").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/strata: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "strata")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
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
	for name, rt := range map[string]Rate{"raw sink": b.RawSink, "raw sendfile": b.RawSendfile, "raw sendfile, one stream": b.RawSendfileStream, "raw GETs": b.RawGet, "raw PUTs": b.RawPut, "upload": r.Upload} {
		if rt.Bytes <= 0 || rt.MBps <= 0 {
			t.Errorf("%s did not run: %+v", name, rt)
		}
	}
	if b.RawGet.Concurrency != r.Config.ColdPartitions*(1+r.Config.Readahead) {
		t.Errorf("raw GET concurrency %d", b.RawGet.Concurrency)
	}
	for name, tp := range map[string]Throughput{
		"produce kfake": r.ProduceKfake, "hot consume decoded by kgo": r.HotConsumeDecoded, "hot consume kfake": r.HotConsumeKfake,
		"hot consume decoded by kgo, sendfile off": r.HotConsumeDecodedCopy,
	} {
		if tp.Records <= 0 || tp.PayloadBytes <= 0 || tp.Seconds <= 0 {
			t.Errorf("%s did not run: %+v", name, tp)
		}
	}
	if r.HotConsumeDecoded.Client != clientDecoding || r.HotConsumeKfake.Client != clientDecoding {
		t.Errorf("decoded consumers: %q, %q", r.HotConsumeDecoded.Client, r.HotConsumeKfake.Client)
	}
	// The protocol-level consumer: records counted from batch headers, no
	// payload decoded, at Fetch v12 or later; on its own connection with a
	// reused buffer except for the one row over kgo's connection.
	protocol := map[string]Throughput{"hot consume": r.HotConsume, "hot consume kfake": r.HotConsumeKfakeWire,
		"cold replay": r.ColdReplay, "warm replay": r.WarmReplay, "hot consume over kgo's connection": r.HotConsumeKgoConn}
	for _, c := range r.Child {
		protocol["child consume, sendfile "+onOff(c.Sendfile)] = c.Consume
	}
	for name, tp := range protocol {
		want := clientWire
		if name == "hot consume over kgo's connection" {
			want = clientProtocol
		}
		if tp.Client != want || tp.FetchVersion < 12 || tp.Records <= 0 || tp.FetchedBytes <= 0 || tp.LogBytes <= 0 || tp.PayloadBytes != 0 || tp.Seconds <= 0 {
			t.Errorf("%s (protocol-level fetch): %+v", name, tp)
		}
	}
	if r.HotConsume.LogBytes != r.HotConsume.FetchedBytes {
		t.Errorf("hot consume: broker counted %d bytes, the protocol-level consumer %d", r.HotConsume.LogBytes, r.HotConsume.FetchedBytes)
	}
	if len(r.Child) != 2*childRounds || !r.Child[0].Sendfile || r.Child[1].Sendfile {
		t.Fatalf("child-process broker runs: %+v", r.Child)
	}
	for _, c := range r.Child {
		if c.BrokerSeconds <= 0 || c.CPUPerGB <= 0 || c.FetchBytes <= 0 || c.Consume.LogBytes != c.FetchBytes {
			t.Errorf("child broker, sendfile %s: %+v", onOff(c.Sendfile), c)
		}
	}
	for _, c := range r.Child {
		if c.Sendfile && (c.SendfileBytes <= 0 || c.CopiedBytes != 0) || !c.Sendfile && (c.CopiedBytes <= 0 || c.SendfileBytes != 0) {
			t.Errorf("child broker, sendfile %s: %d bytes through sendfile, %d copied", onOff(c.Sendfile), c.SendfileBytes, c.CopiedBytes)
		}
		if c.ClientProfile == "" {
			t.Errorf("child broker, sendfile %s: no client profile", onOff(c.Sendfile))
		}
	}
	if len(r.Produce) != 1+len(r.Config.Variants) {
		t.Errorf("%d produce results, want %d", len(r.Produce), 1+len(r.Config.Variants))
	}
	if r.HotConsumeSendfileBytes <= 0 {
		t.Errorf("sendfile bytes %d with sendfile on", r.HotConsumeSendfileBytes)
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
	if r.RemoteFetch.Reads == 0 || r.RemoteFetch.P50 <= 0 || r.RemoteFetch.P99 < r.RemoteFetch.P50 {
		t.Errorf("remote read latency %+v", r.RemoteFetch)
	}
	// The cleaner read the whole log (at least once) and removed the older
	// versions of every key; the raw baseline read exactly the same files.
	if cp := r.Compaction; cp.Segments < 2 || cp.LogBytes <= 0 || cp.Cleaner.Bytes < cp.LogBytes || cp.Raw.Bytes != cp.LogBytes ||
		cp.RecordsRemoved < cp.Records-cp.Keys || cp.CleanerWritten <= 0 || cp.CleanerWritten >= cp.LogBytes || cp.Cleaner.MBps <= 0 || cp.Raw.MBps <= 0 {
		t.Errorf("compaction: %+v", cp)
	}
	if len(r.Many) != len(r.Config.ManyPartitions) {
		t.Errorf("many partitions: %d results", len(r.Many))
	}
	for _, phase := range []string{"produce-strata", "produce-kfake", "produce-lz4", "produce-zstd", "consume-sendfile", "consume-kfake-wire", "consume-kgo-conn", "consume-kgo", "consume-kfake", "raw-sendfile", "raw-sendfile-2", "consume-sendfile-2", "raw-sendfile-stream", "consume-kgo-copy", "cold-replay", "raw-gets", "cold-replay-2", "raw-gets-2", "compact-raw", "compact-clean"} {
		if _, ok := r.cpu(phase); !ok {
			t.Errorf("no CPU measurement of %s", phase)
		}
	}
	// A tiny phase can end within one clock tick of /proc/stat: 0 is allowed
	// for a phase, not for all of them.
	var busy float64
	for _, c := range r.CPU {
		if c.MachineBusy < 0 || c.MachineBusy > 1 {
			t.Errorf("phase %s: machine busy %v, want [0, 1]", c.Phase, c.MachineBusy)
		}
		busy += c.MachineBusy
	}
	if busy == 0 {
		t.Error("no phase recorded the machine's busy share")
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
	// 9, and the isolation workload's 5.
	if len(targets) != 14 {
		t.Errorf("%d figures with targets, want 14: %v", len(targets), targets)
	}
	// The rows of each consumer, against the baseline each is comparable to.
	for _, row := range []string{
		"hot consume, log bytes (protocol-level fetch, 1 MiB buffer) vs raw sendfile",
		"hot consume, log bytes (protocol-level fetch, 1 MiB buffer) vs kfake, same consumer",
		"hot consume, decoded by kgo, payload vs kfake, decoded by kgo",
		"broker CPU per GB served, sendfile (child process) vs sendfile off (copy path)",
		fmt.Sprintf("cold replay, remote bytes (cache empty, protocol-level fetch) vs raw GETs x%d", b.RawGet.Concurrency),
	} {
		if !targets[row] {
			t.Errorf("no row %q: %v", row, targets)
		}
	}
	rows := map[string]bool{}
	for _, f := range r.Figures {
		rows[f.Name+" vs "+f.Baseline] = true
	}
	for _, row := range []string{
		"hot consume, log bytes, decoded by kgo vs raw sendfile",
		"hot consume, log bytes, protocol-level over kgo's connection (32 MiB responses) vs raw sendfile",
		"hot consume, decoded by kgo, payload, sendfile off (copy path) vs kfake, decoded by kgo",
		fmt.Sprintf("warm replay, remote bytes (cache full, protocol-level fetch) vs raw GETs x%d", b.RawGet.Concurrency),
		"produce, payload, lz4 (" + r.Config.Variants[1].String() + ") vs uncompressed",
		"produce, payload, zstd (" + r.Config.Variants[2].String() + ") vs uncompressed",
		"produce, zstd, log bytes / payload vs ",
		"compaction, cleaner log read vs raw sequential read+write, same disk",
	} {
		if !rows[row] {
			t.Errorf("no row %q", row)
		}
	}
	// The CPU comparison of a compressed produce needs a profile sample in
	// both phases, which a tiny run's phases may be too short to take.
	base, _ := r.cpu("produce-strata")
	for _, codec := range []string{"lz4", "zstd"} {
		cc, _ := r.cpu("produce-" + codec)
		row := "produce, " + codec + ", broker CPU per GB of payload vs uncompressed"
		if sampled := base.BrokerSecs > 0 && cc.BrokerSecs > 0; rows[row] != sampled {
			t.Errorf("row %q present %v, with CPU samples in both phases %v", row, rows[row], sampled)
		}
	}
	md := r.Markdown()
	for _, want := range []string{"| figure | value | baseline | baseline value | ratio | target | result |", "| sendfile | round | wall s | MB/s | broker user CPU s |", clientWire, "### Compaction", "### Isolation"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown has no %q:\n%s", want, md)
		}
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

// batch is a v2 record batch header of records base..base+n-1 followed by
// body bytes.
func batch(base int64, n int32, body int) []byte {
	b := make([]byte, recordBatchHeader+body)
	binary.BigEndian.PutUint64(b[0:], uint64(base))
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	b[16] = 2
	binary.BigEndian.PutUint32(b[23:], uint32(n-1))
	binary.BigEndian.PutUint32(b[57:], uint32(n))
	return b
}

func TestWalkBatches(t *testing.T) {
	var b []byte
	b = append(b, batch(0, 10, 100)...)  // 0-9: below the fetch offset
	b = append(b, batch(10, 10, 100)...) // 10-19: from 15
	b = append(b, batch(20, 5, 50)...)   // 20-24: up to 22
	whole := len(b)
	b = append(b, batch(25, 5, 50)[:70]...) // cut short
	next, recs, err := walkBatches(b, 15, 23)
	if err != nil || next != 25 || recs != 5+3 {
		t.Errorf("walkBatches: next %d, records %d, %v; want 25, 8", next, recs, err)
	}
	if _, _, err := walkBatches(b[whole:], 25, 30); err == nil {
		t.Error("only a partial batch: no error")
	}
	bad := batch(0, 1, 0)
	bad[16] = 1
	if _, _, err := walkBatches(bad, 0, 1); err == nil {
		t.Error("magic 1: no error")
	}
	if next, recs, err := walkBatches(nil, 7, 9); err != nil || next != 7 || recs != 0 {
		t.Errorf("empty: %d %d %v", next, recs, err)
	}
}

func TestSumExposition(t *testing.T) {
	text := `# HELP strata_broker_fetch_bytes_total x
# TYPE strata_broker_fetch_bytes_total counter
strata_broker_fetch_bytes_total 1.5e+06
strata_s3_requests_total{operation="GetObject"} 3
strata_s3_requests_total{operation="PutObject",x="a b"} 4
strata_broker_fetch_bytes_total_other 9
`
	m, err := sumExposition(strings.NewReader(text), "strata_broker_fetch_bytes_total", "strata_s3_requests_total", "missing")
	if err != nil || m["strata_broker_fetch_bytes_total"] != 1.5e6 || m["strata_s3_requests_total"] != 7 || m["missing"] != 0 {
		t.Errorf("%v %v", m, err)
	}
}

func TestProcCPU(t *testing.T) {
	u, s, err := procCPU(os.Getpid())
	if err != nil {
		t.Skip(err) // no /proc
	}
	if u < 0 || s < 0 {
		t.Errorf("utime %v stime %v", u, s)
	}
}

// TestRawSendfilePieces checks that both shapes of the raw-sendfile baseline
// move every byte of one pass over the files.
func TestRawSendfilePieces(t *testing.T) {
	dir := t.TempDir()
	var files []string
	var total int64
	for i, size := range []int{3<<20 + 1, 512 << 10, 1} {
		name := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(name, randomBytes(size), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
		total += int64(size)
	}
	for _, piece := range []int64{0, 1 << 20, 100} {
		r, err := rawSendfile(context.Background(), files, 0, piece)
		if err != nil || r.Bytes != total {
			t.Errorf("piece %d: %d bytes, %v; want %d", piece, r.Bytes, err, total)
		}
	}
}

func TestAddRuns(t *testing.T) {
	a := Throughput{Client: clientWire, FetchVersion: 17, Records: 10, FetchedBytes: 1e6, LogBytes: 1e6, Seconds: 1}
	b := Throughput{Client: clientWire, FetchVersion: 17, Records: 30, FetchedBytes: 3e6, LogBytes: 3e6, Seconds: 3}
	s := Throughput{}.add(a).add(b)
	if s.Client != clientWire || s.FetchVersion != 17 || s.Records != 40 || s.LogBytes != 4e6 || s.Seconds != 4 || s.LogMBps != 1 || s.RecordsPerS != 10 {
		t.Errorf("sum of throughputs: %+v", s)
	}
	r := Rate{}.add(rate(1e6, time.Second, "x")).add(rate(5e6, time.Second, "x"))
	if r.Bytes != 6e6 || r.Seconds != 2 || r.MBps != 3 || r.How != "x" {
		t.Errorf("sum of rates: %+v", r)
	}
}
