package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunTinyCluster runs `strata bench --cluster 3` at its smallest: three
// child-process brokers, a few MiB per throughput side, one kill -9, one
// controlled shutdown. It checks the report's structure and that its
// numbers are sane (counts add up, times are ordered), never how fast.
func TestRunTinyCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three strata processes")
	}
	c := Defaults()
	c.Cluster = 3
	c.Headline = ProduceCase{RecordBytes: 1024, Partitions: 2, Acks: "1", BatchBytes: 64 << 10}
	c.ClusterProduceBytes = 2 << 20
	c.ClusterKills = 1
	c.ClusterSessionTimeout = 2 * time.Second
	c.ClusterHeartbeat = 500 * time.Millisecond
	c.LatencyRate = 200
	c.LatencyDuration = time.Second
	c.Dir = t.TempDir()
	c.Out = filepath.Join(t.TempDir(), "out")
	c.StrataBinary = strataForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := Run(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := rep.Cluster
	if cl == nil {
		t.Fatal("no cluster result")
	}
	recs := c.ClusterProduceBytes / int64(c.Headline.RecordBytes)
	for name, tp := range map[string]Throughput{"rf1": cl.RF1, "rf3": cl.RF3} {
		if tp.Records != recs || tp.PayloadBytes != recs*int64(c.Headline.RecordBytes) || tp.Seconds <= 0 || tp.PayloadMBps <= 0 {
			t.Errorf("%s throughput: %+v, want %d records", name, tp, recs)
		}
	}
	// A tiny side can take less CPU than /proc's 10 ms tick: zero is sane.
	if cl.RF1BrokerCPU < 0 || cl.RF3BrokerCPU < 0 {
		t.Errorf("brokers' CPU: rf1 %v, rf3 %v", cl.RF1BrokerCPU, cl.RF3BrokerCPU)
	}
	if want := int64(c.LatencyRate) * int64(c.LatencyDuration/time.Second); cl.Latency.Records != want ||
		!(0 < cl.Latency.P50 && cl.Latency.P50 <= cl.Latency.P99 && cl.Latency.P99 <= cl.Latency.P999) {
		t.Errorf("latency: %d records (want %d), p50 %v p99 %v p99.9 %v", cl.Latency.Records, want, cl.Latency.P50, cl.Latency.P99, cl.Latency.P999)
	}
	if len(cl.Failover) != c.ClusterKills {
		t.Fatalf("%d failovers, want %d", len(cl.Failover), c.ClusterKills)
	}
	for _, f := range cl.Failover {
		if f.Node < 1 || f.Node > 3 || len(f.Partitions) == 0 || f.ElectedSeconds <= 0 ||
			f.FirstAckSeconds <= 0 || f.FirstAckSeconds > f.AllAckedSeconds {
			t.Errorf("failover: %+v", f)
		}
	}
	if cl.FailoverP50 <= 0 || cl.FailoverP50 > cl.FailoverMax {
		t.Errorf("failover p50 %v, max %v", cl.FailoverP50, cl.FailoverMax)
	}
	s := cl.Shutdown
	if s.Node < 1 || s.Node > 3 || len(s.Partitions) == 0 || s.Acked <= 0 || s.Failed < 0 || s.ExitSeconds <= 0 || s.ElectedSeconds <= 0 || s.PauseSeconds <= 0 {
		t.Errorf("controlled shutdown: %+v", s)
	}
	// Every row, in the table and in report.json.
	md := rep.Markdown()
	rows := []string{
		"cluster produce, payload, acks=all at RF 3",
		"cluster e2e latency p50 at 200 rec/s, RF 3 acks=all",
		"cluster e2e latency p99, RF 3 acks=all",
		"cluster e2e latency p99.9, RF 3 acks=all",
		"failover p50, kill -9 of a leader to an acknowledged produce on each of its partitions (1 kills)",
		"failover max",
		"controlled shutdown (SIGTERM of a leader under acks=all), failed produces",
		"controlled shutdown, longest pause in acknowledgements on its partitions",
	}
	names := map[string]Figure{}
	for _, f := range rep.Figures {
		names[f.Name] = f
	}
	for _, row := range rows {
		if !strings.Contains(md, "| "+row) {
			t.Errorf("report.md has no row %q:\n%s", row, md)
		}
		found := false
		for n := range names {
			found = found || strings.HasPrefix(n, row)
		}
		if !found {
			t.Errorf("no figure %q", row)
		}
	}
	for n, f := range names {
		if strings.HasPrefix(n, "failover") && (f.Target == "" || f.Pass == nil || f.BaselineValue != 2) {
			t.Errorf("figure %q: target %q, pass %v, baseline %v: want a goal against the 2 s session timeout", n, f.Target, f.Pass, f.BaselineValue)
		}
	}
	if err := rep.WriteFiles(c.Out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(c.Out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Cluster *ClusterResult `json:"cluster"`
	}
	if err := json.Unmarshal(b, &j); err != nil || j.Cluster == nil || len(j.Cluster.Failover) != 1 {
		t.Errorf("report.json: cluster %+v, %v", j.Cluster, err)
	}
	t.Logf("\n%s", md)
}
