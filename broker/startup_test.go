package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/localstore"
)

// num.recovery.threads.per.data.dir: at start-up the partition logs are
// opened (and, after an unclean shutdown, recovered) by that many workers.
// The hook holds the first N opens until N are in flight, so a start-up that
// opens fewer at once fails on the deadline, and one that opens more is seen.
func TestStartupOpensLogsWithRecoveryThreads(t *testing.T) {
	const partitions, workers = 12, 4
	root := t.TempDir()
	tp := &topic{name: "rec"}
	var jobs []partitionJob
	for i := range partitions {
		dir := filepath.Join(root, fmt.Sprintf("rec-%d", i))
		l, err := localstore.Open(dir, localstore.Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range i + 1 {
			if _, err := l.Append(makeBatch(-1, -1, -1, 3)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// Unclean: no clean-shutdown marker, and a torn batch at the tail.
		if err := os.Remove(filepath.Join(dir, "clean-shutdown")); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(dir, "00000000000000000000.log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(makeBatch(-1, -1, -1, 2)[:40])
		f.Close()
		jobs = append(jobs, partitionJob{t: tp, index: int32(i), dir: dir})
	}

	var inFlight, most, arrived atomic.Int32
	full := make(chan struct{})
	var starved atomic.Bool
	var once sync.Once
	open := func(dir string, cfg localstore.Config, logger *slog.Logger) (*localstore.Log, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if arrived.Add(1) == workers {
			once.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-time.After(20 * time.Second):
			starved.Store(true)
			once.Do(func() { close(full) })
		}
		return localstore.Open(dir, cfg, logger)
	}
	logs, err := openLogs(jobs, workers, open, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, l := range logs {
			l.Close()
		}
	}()
	if starved.Load() || most.Load() != workers {
		t.Fatalf("at most %d logs opened at once, want %d", most.Load(), workers)
	}
	for i, l := range logs {
		want := int64(3 * (i + 1))
		if l.LogEndOffset() != want {
			t.Fatalf("partition %d: log end %d after recovery, want %d (the torn tail cut)", i, l.LogEndOffset(), want)
		}
		sl, err := l.Read(0, 1<<20, true)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for pos := sl.Pos; pos < sl.Pos+sl.Len; {
			hdr := make([]byte, localstore.HeaderSize)
			if _, err := sl.File.ReadAt(hdr, pos); err != nil {
				t.Fatal(err)
			}
			h, _ := localstore.ParseBatchHeader(hdr)
			n += int64(h.NumRecords)
			pos += h.TotalSize()
		}
		sl.Done()
		if n != want {
			t.Fatalf("partition %d: %d records readable, want %d", i, n, want)
		}
	}
}

// A failing open closes the logs already opened and names the partition.
func TestStartupOpenFailureClosesTheRest(t *testing.T) {
	root := t.TempDir()
	tp := &topic{name: "bad"}
	var jobs []partitionJob
	for i := range 5 {
		jobs = append(jobs, partitionJob{t: tp, index: int32(i), dir: filepath.Join(root, fmt.Sprintf("bad-%d", i))})
	}
	var opened []*localstore.Log
	var mu = make(chan struct{}, 1)
	open := func(dir string, cfg localstore.Config, logger *slog.Logger) (*localstore.Log, error) {
		if filepath.Base(dir) == "bad-3" {
			return nil, fmt.Errorf("injected")
		}
		l, err := localstore.Open(dir, cfg, logger)
		mu <- struct{}{}
		opened = append(opened, l)
		<-mu
		return l, err
	}
	_, err := openLogs(jobs, 2, open, slog.New(slog.DiscardHandler))
	if err == nil || err.Error() != "broker: cannot open partition bad-3: injected" {
		t.Fatalf("error %v, want the failing partition named", err)
	}
	for _, l := range opened {
		if _, err := l.Read(0, 1, true); err == nil {
			t.Fatal("a log opened before the failure is still open")
		}
	}
}

// The key reaches start-up: a broker with several recovery threads restarts
// with every partition's data.
func TestRestartWithRecoveryThreads(t *testing.T) {
	tb := startBroker(t, "num.recovery.threads.per.data.dir=3")
	tb.createTopic("rt", 6, nil)
	recs := recordsFor("rt", 60, 6)
	produceSync(t, tb.client(), recs...)
	tb.restart()
	if got := tb.srv.cfg.NumRecoveryThreadsPerDataDir; got != 3 {
		t.Fatalf("num.recovery.threads.per.data.dir %d, want 3", got)
	}
	got := consumeN(t, tb.client(kgo.ConsumeTopics("rt"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), 60, 30*time.Second)
	checkSame(t, recs, got)
}

// lockedBuffer is a log sink safe for the broker's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A start-up logs one warning per Kafka key that was set but has no effect.
func TestStartupWarnsOnceForKeysWithoutEffect(t *testing.T) {
	cfg, err := config.Load("", nil, []string{"log.dirs=" + t.TempDir(), "listeners=PLAINTEXT://127.0.0.1:0", "num.io.threads=16", "zookeeper.connect=zk:2181"})
	if err != nil {
		t.Fatal(err)
	}
	var buf lockedBuffer
	srv, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	out := buf.String()
	for _, key := range []string{"num.io.threads", "zookeeper.connect"} {
		if n := strings.Count(out, "key="+key+" "); n != 1 {
			t.Errorf("%d warnings naming %s, want 1:\n%s", n, key, out)
		}
	}
	if strings.Contains(out, "key=num.network.threads") {
		t.Errorf("a warning for a key left at its default:\n%s", out)
	}
}
