package broker

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/config"
)

// A partition whose disk fails keeps failing every tick (the log's write
// error is sticky); it is logged once when it starts failing, not every
// second, and produce to it gets KAFKA_STORAGE_ERROR. The failure is a roll
// that cannot create its new segment (the partition directory is gone),
// which needs no root, mount or full disk.
func TestFailingPartitionLogsOncePerStateChange(t *testing.T) {
	cfg, err := config.Load("", nil, []string{"log.dirs=" + t.TempDir(), "listeners=PLAINTEXT://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	srv, err := New(cfg, Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	tp, err := srv.topics.create("disk", 2, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	bad, good := tp.partition(0), tp.partition(1)
	for _, p := range []*partition{bad, good} {
		if _, err := srv.produceTo(p, makeBatch(-1, -1, -1, 2), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(bad.log.Local().Dir()); err != nil {
		t.Fatal(err)
	}

	failing := failingLogs{}
	later := time.Now().Add(8 * 24 * time.Hour) // past segment.ms (7 days): every tick tries to roll
	for i := range 5 {
		srv.tickLogs(later.Add(time.Duration(i)*time.Second), failing)
	}
	out := buf.String()
	if n := strings.Count(out, "partition log failing"); n != 1 {
		t.Fatalf("%d failure warnings over 5 failing ticks, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "topic=disk partition=0") {
		t.Fatalf("the warning does not name the partition:\n%s", out)
	}
	if _, ok := failing[good]; ok {
		t.Fatal("the healthy partition is marked failing")
	}

	_, err = srv.produceTo(bad, makeBatch(-1, -1, -1, 1), 0)
	if produceError(err) != kerr.KafkaStorageError {
		t.Fatalf("produce to the failed partition: %v, want KAFKA_STORAGE_ERROR", err)
	}
	if _, err := srv.produceTo(good, makeBatch(-1, -1, -1, 1), 0); err != nil {
		t.Fatalf("produce to the healthy partition: %v", err)
	}
	sl, err := bad.log.Local().Read(0, 1<<20, true)
	if err != nil || sl.Len == 0 {
		t.Fatalf("read of what the failed partition holds: %v (%d bytes)", err, sl.Len)
	}
	sl.Done()
}

// The state change back: a recovered partition is logged once at INFO.
func TestFailingLogsNoteRecovery(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	p := &partition{topic: &topic{name: "x"}, index: 3}
	f := failingLogs{}
	errFull := errors.New("no space left on device")
	for _, err := range []error{nil, errFull, errFull, nil, nil, errFull} {
		f.note(logger, p, err)
	}
	out := buf.String()
	if w, i := strings.Count(out, "level=WARN"), strings.Count(out, "level=INFO msg=\"partition log recovered\""); w != 2 || i != 1 {
		t.Fatalf("%d warnings and %d recoveries, want 2 and 1:\n%s", w, i, out)
	}
}
