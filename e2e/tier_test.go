package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/internal/wait"
)

// tierSets make every auto-created topic tier fast: 4 KiB segments, nothing
// kept locally once uploaded, a 100 ms tiering round.
var tierSets = []string{
	"log.segment.bytes=4096",
	"log.local.retention.bytes=0",
	"remote.log.manager.task.interval.ms=100",
	"log.retention.check.interval.ms=100",
	"remote.chunk.bytes=16384",
}

func minioSet(mio *minioserver.Server, bucket, prefix string) string {
	return fmt.Sprintf("remote.storage.url=s3://%s/%s?endpoint=%s&access_key=%s&secret_key=%s&region=us-east-1",
		bucket, prefix, mio.Endpoint, mio.AccessKey, mio.SecretKey)
}

// listOffset asks the broker for a special ListOffsets timestamp (v9) of
// partition 0; -1 if it could not.
func listOffset(t *testing.T, addr, topic string, ts int64) int64 {
	t.Helper()
	offs, err := requestOffsets(addr, topic, 1, ts)
	if err != nil {
		return -1
	}
	return offs[0]
}

// waitTiered waits until the early segments of partition 0 (at least half of
// the log) live only in the remote tier.
func waitTiered(t *testing.T, addr, topic string) {
	t.Helper()
	var local, tiered, end int64
	if !wait.Until(90*time.Second, func() bool {
		local, tiered = listOffset(t, addr, topic, -4), listOffset(t, addr, topic, -5)
		end = listOffset(t, addr, topic, -1)
		return local > 0 && tiered == local-1 && local >= end/2
	}) {
		t.Fatalf("not tiered within 90s: earliest-local %d, latest-tiered %d, end %d", local, tiered, end)
	}
}

func kcatReplay(t *testing.T, p *proc) {
	kc := kcat(t)
	in := lines(5000)
	runCmd(t, time.Minute, in, kc, "-b", p.addr(), "-P", "-t", "history", "-X", "batch.num.messages=50")
	waitTiered(t, p.addr(), "history")
	out := runCmd(t, time.Minute, nil, kc, "-b", p.addr(), "-C", "-t", "history", "-o", "beginning", "-e", "-q", "-f", "%s\n", "-d", "broker,fetch,protocol")
	if !bytes.Equal(in, out) {
		t.Fatalf("kcat read %d bytes from offset 0, wrote %d", len(out), len(in))
	}
}

// The README's run command with its default fs tier: kcat reads from offset 0
// a topic whose early segments live only in the remote tier.
func TestKcatReplaysFromFilesystemTier(t *testing.T) {
	p := startProc(t, tierSets...)
	kcatReplay(t, p)
	if _, err := os.Stat(filepath.Join(p.dir, "remote")); err != nil {
		t.Fatalf("default fs tier directory: %v", err)
	}
}

func TestKcatReplaysFromMinIOTier(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	p := startProc(t, append([]string{minioSet(mio, bucket, "kcat")}, tierSets...)...)
	kcatReplay(t, p)
}

// runStrata runs a strata subcommand against the proc's data directory.
func runStrata(t *testing.T, p *proc, args ...string) string {
	t.Helper()
	all := append([]string{}, args...)
	all = append(all, "--set", "log.dirs="+p.dir)
	for _, s := range p.sets {
		all = append(all, "--set", s)
	}
	cmd := exec.Command(strataBin(t), all...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var remoteLine = regexp.MustCompile(`(?m)^\s+remote\s.*$`)

// remoteIndex is the remote lines of `strata tier ls`, sorted, spaces folded.
func remoteIndex(t *testing.T, p *proc) []string {
	out := runStrata(t, p, "tier", "ls")
	var lines []string
	for _, l := range remoteLine.FindAllString(out, -1) {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	sort.Strings(lines)
	return lines
}

// TestKill9MidUploadLeavesNoOrphanAndLosesNothing kills the broker while
// rate-limited uploads are in flight, restarts it, and checks that the
// bucket holds exactly what the index owns and every record is readable.
func TestKill9MidUploadLeavesNoOrphanAndLosesNothing(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sets := append([]string{minioSet(mio, bucket, ""), "remote.log.manager.copy.max.bytes.per.second=8192", "metrics.listen=" + maddr}, tierSets...)
	p := startProc(t, sets...)

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("crashy"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 3000; i++ {
		want = append(want, fmt.Sprintf("rec-%05d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < len(want); i += 100 {
		var recs []*kgo.Record
		for _, v := range want[i : i+100] {
			recs = append(recs, &kgo.Record{Value: []byte(v)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	// Kill while uploads run: once this process has started one, throttled
	// to 8 KiB/s, the 4 KiB segments keep it and the next ones in flight.
	for i := 0; i < 3; i++ {
		wait.For(t, time.Minute, "an upload to start", func() bool {
			return metricValue(t, maddr, "strata_tier_copy_requests_total") > 0
		})
		p.kill9()
		p.start()
	}
	// The kills interrupted uploads, which restarts rolled back.
	p.mu.Lock()
	rolledBack := strings.Count(p.logs.String(), "rolled back an interrupted upload")
	p.mu.Unlock()
	if rolledBack == 0 {
		t.Fatal("no kill landed in the middle of an upload: the test proves nothing")
	}
	t.Logf("%d interrupted uploads rolled back", rolledBack)
	// Lift the throttle and let everything tier.
	p.stop()
	p.sets = append(p.sets, "remote.log.manager.copy.max.bytes.per.second=-1")
	p.start()
	waitTiered(t, p.addr(), "crashy")
	p.stop()

	// No orphans, and every object in the bucket owned by the index.
	bucketOwnedByIndex(t, p, mio, bucket)

	// Nothing lost: every record from offset 0, in order, once.
	p.start()
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.ConsumeTopics("crashy"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < len(want) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d", len(got), len(want))
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("records differ after crashes (%d read)", len(got))
	}
}

// TestTierRecoverRebuildsTheIndex deletes meta.db and rebuilds the remote
// index from the bucket alone.
func TestTierRecoverRebuildsTheIndex(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	p := startProc(t, append([]string{minioSet(mio, bucket, "rec")}, tierSets...)...)
	kc := kcat(t)
	in := lines(3000)
	runCmd(t, time.Minute, in, kc, "-b", p.addr(), "-P", "-t", "history", "-X", "batch.num.messages=50")
	waitTiered(t, p.addr(), "history")
	p.stop()
	// What recover must restore: the finished segments. An upload the stop
	// cut short (COPY_STARTED) is rolled back at the next start instead.
	var before []string
	for _, l := range remoteIndex(t, p) {
		if strings.Contains(l, "COPY_FINISHED") {
			before = append(before, l)
		}
	}
	if len(before) == 0 {
		t.Fatal("nothing in the remote index")
	}
	if err := os.Remove(filepath.Join(p.dir, "meta.db")); err != nil {
		t.Fatal(err)
	}
	out := runStrata(t, p, "tier", "recover")
	after := remoteIndex(t, p)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("index differs after recover (%s):\nbefore:\n%s\nafter:\n%s", out, strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	// The recovered broker serves the remote records from offset 0.
	p.start()
	got := runCmd(t, time.Minute, nil, kc, "-b", p.addr(), "-C", "-t", "history", "-o", "beginning", "-c", "2000", "-q", "-f", "%s\n")
	if !bytes.HasPrefix(in, got) || len(got) == 0 {
		t.Fatalf("after recover, read %d bytes that are not the start of what was written", len(got))
	}
}

// TestKcatReplayWithServeDefaults is the README's case as a user meets it:
// `strata serve` with every broker default (fs tier under log.dirs, a 30 s
// tiering round), a topic created with segment.bytes and
// local.retention.bytes=0, and kcat reading it from offset 0 once its early
// segments live only in the remote tier.
func TestKcatReplayWithServeDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the default 30 s tiering round")
	}
	kc := kcat(t)
	p := startProc(t) // only listeners and log.dirs are set
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{
		"segment.bytes":         kadm.StringPtr("16384"),
		"local.retention.bytes": kadm.StringPtr("0"),
	}, "history")
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	in := lines(3000)
	runCmd(t, time.Minute, in, kc, "-b", p.addr(), "-P", "-t", "history", "-X", "batch.num.messages=100")
	waitTiered(t, p.addr(), "history")
	out := runCmd(t, time.Minute, nil, kc, "-b", p.addr(), "-C", "-t", "history", "-o", "beginning", "-e", "-q", "-f", "%s\n")
	if !bytes.Equal(in, out) {
		t.Fatalf("kcat read %d bytes from offset 0, wrote %d", len(out), len(in))
	}
	if entries, _ := os.ReadDir(filepath.Join(p.dir, "remote")); len(entries) == 0 {
		t.Fatal("nothing in the default fs tier")
	}
}

// TestTierLsAndMetricsOfARunningBroker: `strata tier ls` asks the running
// broker through metrics.listen, and /metrics serves the tier's, the chunk
// cache's, the object store's and the broker's metrics.
func TestTierLsAndMetricsOfARunningBroker(t *testing.T) {
	kc := kcat(t)
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, append([]string{"metrics.listen=" + maddr}, tierSets...)...)
	runCmd(t, time.Minute, lines(2000), kc, "-b", p.addr(), "-P", "-t", "history", "-X", "batch.num.messages=50")
	waitTiered(t, p.addr(), "history")

	out := runStrata(t, p, "tier", "ls", "history")
	if !strings.Contains(out, "history/0") || !strings.Contains(out, "COPY_FINISHED") || !strings.Contains(out, "active") {
		t.Fatalf("tier ls of a running broker:\n%s", out)
	}
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, name := range []string{
		"strata_tier_copy_bytes_total", "strata_tier_time_to_tier_seconds_bucket", "strata_tier_copy_lag_segments",
		"strata_remote_cache_misses_total", "strata_remote_store_operations_total",
		"strata_broker_produce_bytes_total", "strata_broker_fetch_sendfile_bytes_total",
	} {
		if !bytes.Contains(body, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// bucketOwnedByIndex checks, with the broker stopped, that `strata tier
// reconcile --grace 0s --dry-run` finds no orphan and that every object in
// the bucket (manifests apart) is a .log or sidecar of a COPY_FINISHED entry
// of the remote index.
func bucketOwnedByIndex(t *testing.T, p *proc, mio *minioserver.Server, bucket string) {
	t.Helper()
	out := runStrata(t, p, "tier", "reconcile", "--grace", "0s", "--dry-run")
	if !strings.Contains(out, "\n0 orphans") && !strings.HasPrefix(out, "0 orphans") {
		t.Fatalf("orphans:\n%s", out)
	}
	keys, err := mio.ObjectKeys(context.Background(), bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	// The topic's manifests (tier/manifest.go) are not segments.
	keys = slices.DeleteFunc(keys, func(k string) bool { return strings.HasPrefix(k, "manifests/") })
	index := remoteIndex(t, p)
	if len(keys) != 2*len(index) {
		t.Fatalf("%d objects in the bucket for %d index entries:\n%s\n%s", len(keys), len(index), strings.Join(keys, "\n"), strings.Join(index, "\n"))
	}
	for _, l := range index {
		if !strings.Contains(l, "COPY_FINISHED") {
			t.Fatalf("index entry not finished: %s", l)
		}
	}
}
