package checker_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/checker"
	"github.com/stratalog/strata/internal/clustertest"
	"github.com/stratalog/strata/internal/wait"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBinary()
	os.Exit(code)
}

// run produces for d with 3 producers and consumes with a group meanwhile,
// calling during (if set) once some records are acknowledged; then reads
// every partition to its end. It returns the three histories.
func run(t *testing.T, c *clustertest.Cluster, topic string, d time.Duration, during func()) (prod, cons, final checker.History) {
	t.Helper()
	ctx := context.Background()
	cl := checker.Client{Brokers: c.Bootstrap(), Topic: topic, Dial: c.DialContext}
	if err := checker.CreateTopic(ctx, cl, 4, 1); err != nil {
		t.Fatal(err)
	}
	run := checker.StartRun(ctx, checker.ProduceConfig{Client: cl, Producers: 3, Duration: d, Rate: 300, Name: "w", DeliveryTimeout: 60 * time.Second},
		checker.ConsumeConfig{Client: cl, Group: "g", Duration: d + 2*time.Second})
	if during != nil {
		wait.For(t, time.Minute, "500 acknowledged records", func() bool { return run.Acked() >= 500 })
		during()
	}
	var err error
	if prod, cons, final, err = run.Finish(ctx, checker.ReadConfig{Client: cl}); err != nil {
		t.Fatal(err)
	}
	return prod, cons, final
}

// A clean run against one strata process has no anomaly; a corrupted
// history line is caught, from the files, as `strata check analyze` does.
func TestRealRunSingleNodeAndCorruptedHistory(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Single: true})
	prod, cons, final := run(t, c, "clean", 3*time.Second, nil)
	r := checker.Analyze(prod, cons, final)
	t.Logf("\n%s", r)
	if !r.OK() || r.Acknowledged < 100 || r.Consumed == 0 || r.FinalRead < r.Acknowledged || r.Indeterminate != 0 {
		t.Fatalf("clean run:\n%s", r)
	}

	dir := t.TempDir()
	files := []string{filepath.Join(dir, "produce"), filepath.Join(dir, "consume"), filepath.Join(dir, "read")}
	for i, h := range []checker.History{prod, cons, final} {
		if err := checker.WriteHistoryFile(files[i], h); err != nil {
			t.Fatal(err)
		}
	}
	if err := checker.Command(append([]string{"analyze"}, files...), io.Discard, io.Discard); err != nil {
		t.Fatalf("analyze of the clean files: %v", err)
	}
	// One final-read line gets another value: lost (that acknowledged
	// record) and divergent (the offset holds two values).
	b, err := os.ReadFile(files[2])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.Contains(l, `"kind":"final"`) {
			lines[i] = strings.Replace(l, `"v":"w`, `"v":"x`, 1)
			break
		}
	}
	os.WriteFile(files[2], []byte(strings.Join(lines, "\n")), 0o644)
	var out strings.Builder
	err = checker.Command(append([]string{"analyze"}, files...), &out, io.Discard)
	if !errors.Is(err, checker.ErrAnomalies) || !strings.Contains(out.String(), "divergent") {
		t.Fatalf("corrupted history: %v\n%s", err, out.String())
	}
	var hs []checker.History
	for _, f := range files {
		h, err := checker.ReadHistoryFile(f)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if r := checker.Analyze(hs...); r.Lost != 1 || r.Divergent != 1 || r.Duplicates != 0 || r.OrderViolations != 0 {
		t.Fatalf("corrupted history:\n%s", r)
	}
}

// kill -9 of the only node mid-run, then a restart: the page cache survives
// kill -9, so nothing acknowledged is lost, and the idempotent producers'
// retries are not written twice.
func TestKill9SingleNodeMidRunLosesNothing(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Single: true})
	prod, cons, final := run(t, c, "kill9", 6*time.Second, func() {
		c.Kill9(0)
		c.Restart(0)
	})
	r := checker.Analyze(prod, cons, final)
	t.Logf("\n%s", r)
	if !r.OK() || r.Lost != 0 || r.Acknowledged < 500 {
		t.Fatalf("after kill -9 and restart:\n%s", r)
	}
}
