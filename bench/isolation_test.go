package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// tinyIsolation is an isolation workload small enough for `go test -race`.
func tinyIsolation(t *testing.T) Config {
	c := Defaults()
	c.Headline = ProduceCase{RecordBytes: 1024, Partitions: 2, Acks: "1", BatchBytes: 32 << 10}
	c.ColdPartitions = 2
	c.Readahead = 1
	c.TaskInterval = 50 * time.Millisecond
	c.LatencyRecordBytes = 1024
	c.IsoCacheBytes = 256 << 10
	c.IsoChunkBytes = 32 << 10
	c.IsoReplayBytes = 1536 << 10
	c.IsoHotBytes = 64 << 10
	c.IsoRate = 200
	c.IsoWindow = time.Second
	c.Dir = t.TempDir()
	return c
}

// TestIsolationTiny runs the isolation workload alone at tiny sizes and
// checks that every window ran and every figure of the issue is reported
// with its ratio (not whether the targets pass: that is the machine's).
func TestIsolationTiny(t *testing.T) {
	cfg := tinyIsolation(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := &runner{cfg: cfg, rep: newReport(cfg), dir: cfg.Dir, prog: newProgress(nil, 8)}
	defer r.cleanup()
	if err := r.openStore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.isolationPhases(ctx); err != nil {
		t.Fatal(err)
	}
	r.rep.buildFigures()
	iso := r.rep.Isolation
	if iso == nil {
		t.Fatal("no isolation result")
	}
	if iso.ReplayBytes < 4*cfg.IsoCacheBytes || iso.HotBytes <= 0 || iso.HotBytes >= cfg.IsoCacheBytes {
		t.Fatalf("replayed %d bytes, hot %d, cache %d", iso.ReplayBytes, iso.HotBytes, cfg.IsoCacheBytes)
	}
	for name, w := range map[string]IsoWindow{"baseline": iso.Baseline, "replay": iso.Replay, "limited": iso.Limited} {
		if w.Live.Records < int64(cfg.IsoRate) || w.Live.ProduceP99 <= 0 || w.Live.E2EP99 <= 0 {
			t.Errorf("%s: live %+v", name, w.Live)
		}
	}
	for name, w := range map[string]IsoWindow{"baseline": iso.Baseline, "replay": iso.Replay, "limited": iso.Limited, "lru baseline": iso.LRUBaseline, "lru replay": iso.LRUReplay} {
		if w.Hot.ReadBytes < hotPasses*iso.HotBytes/2 || w.Hot.HitRate < 0 || w.Hot.HitRate > 1 {
			t.Errorf("%s: hot reader %+v", name, w.Hot)
		}
	}
	for name, w := range map[string]IsoWindow{"replay": iso.Replay, "limited": iso.Limited, "lru replay": iso.LRUReplay} {
		if w.ReplayRead.FetchedBytes < iso.ReplayBytes/2 || w.ReplayDownloaded <= 0 {
			t.Errorf("%s: replay read %d bytes, downloaded %d", name, w.ReplayRead.FetchedBytes, w.ReplayDownloaded)
		}
	}
	// With nothing else reading, the hot set the warm-up read twice is all
	// hits under either policy.
	for name, w := range map[string]IsoWindow{"S3-FIFO": iso.Baseline, "LRU": iso.LRUBaseline} {
		if w.Hot.DownloadedBytes != 0 {
			t.Errorf("%s, no replay: the hot reader downloaded %d bytes", name, w.Hot.DownloadedBytes)
		}
	}
	if iso.LimitBytesPerSec < 1e6 || iso.RawGet.MBps <= 0 {
		t.Errorf("limit %d, raw GETs %+v", iso.LimitBytesPerSec, iso.RawGet)
	}
	want := map[string]bool{
		"isolation: produce p99, cold replay at full speed":                                        true,
		"isolation: tail consumer p99 (end to end), cold replay at full speed":                     true,
		"isolation: hot reader byte hit rate, cold replay at full speed (S3-FIFO)":                 true,
		"isolation: replay download rate with the fetch limit set":                                 true,
		"isolation: cold replay at full speed, bytes received (beside the live and hot workloads)": true,
		"isolation: hot reader byte hit rate, cold replay at full speed (LRU, the old policy)":     false,
	}
	seen := map[string]bool{}
	for _, f := range r.rep.Figures {
		targeted, ok := want[f.Name]
		if !ok {
			continue
		}
		seen[f.Name] = true
		// LRU's hit rate during the replay may be 0 at tiny sizes (the
		// replay flushed the whole cache): a ratio of 0, not a missing one.
		if f.Ratio < 0 || (f.Ratio == 0 && targeted) || (f.Pass != nil) != targeted || (targeted && f.Target == "") {
			t.Errorf("%s: ratio %v, target %q, pass %v", f.Name, f.Ratio, f.Target, f.Pass)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("figure %q missing", name)
		}
	}
	md := r.rep.Markdown()
	if !strings.Contains(md, "### Isolation") || !strings.Contains(md, "| cold replay, full speed | LRU |") {
		t.Errorf("markdown has no isolation table:\n%s", md)
	}
	t.Log(md)
}
