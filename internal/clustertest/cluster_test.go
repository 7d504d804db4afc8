package clustertest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/checker"
	"github.com/stratalog/strata/internal/wait"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinary()
	os.Exit(code)
}

// The cluster command line is the issue's, node by node.
func TestClusterCommandLines(t *testing.T) {
	c := &Cluster{t: t, opts: Options{Extra: []string{"min.insync.replicas=2"},
		PerNode: func(i int) []string { return []string{"broker.rack=r" + string(rune('a'+i))} }}}
	for i, p := range [][2]int{{9092, 9093}, {9192, 9193}, {9292, 9293}} {
		c.nodes = append(c.nodes, &node{id: i + 1, host: "127.0.0.1", port: p[0], ctrl: p[1], dataDir: "d/data-" + string(rune('1'+i))})
	}
	c.buildArgs("file:///s", []string{"1@127.0.0.1:9093", "2@127.0.0.1:9193", "3@127.0.0.1:9293"})
	want := "serve --set node.id=2 --set process.roles=broker,controller " +
		"--set listeners=PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193 " +
		"--set controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293 " +
		"--set log.dirs=d/data-2 --set remote.storage.url=file:///s " +
		"--set group.initial.rebalance.delay.ms=0 --set min.insync.replicas=2 --set broker.rack=rb"
	if got := strings.Join(c.Args(1), " "); got != want {
		t.Fatalf("node 2:\n got %s\nwant %s", got, want)
	}
	ports := c.ports(3)
	seen := map[int]bool{}
	for _, p := range ports {
		for _, q := range []int{p[0], p[1], p[1] + 1} {
			if seen[q] {
				t.Fatalf("port %d picked twice: %v", q, ports)
			}
			seen[q] = true
		}
	}
}

func ping(c *Cluster, i int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return checker.Ping(ctx, c.Addr(i), c.DialContext)
}

// Two single nodes through every fault the harness makes.
func TestSingleNodesFaults(t *testing.T) {
	c := Start(t, Options{Single: true, Brokers: 2})
	if len(c.Bootstrap()) != 2 || c.Bootstrap()[0] == c.Bootstrap()[1] {
		t.Fatalf("bootstrap %v", c.Bootstrap())
	}
	adm := kadm.NewClient(c.Client(t, kgo.SeedBrokers(c.Addr(0))))
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}

	// SIGSTOP: still running, answers nothing; SIGCONT: answers again.
	c.Stop(0)
	if !c.Running(0) {
		t.Fatal("a stopped node is not running")
	}
	if err := ping(c, 0, 500*time.Millisecond); err == nil {
		t.Fatal("a SIGSTOPped node answered ApiVersions")
	}
	c.Cont(0)
	wait.Eventually(t, "node 1 to answer after SIGCONT", func() bool { return ping(c, 0, time.Second) == nil })

	// kill -9 and restart: same port, same data.
	addr := c.Addr(1)
	c.Kill9(1)
	if c.Running(1) || ping(c, 1, 500*time.Millisecond) == nil {
		t.Fatal("node 2 answers after kill -9")
	}
	c.Restart(1)
	if c.Addr(1) != addr || ping(c, 1, 5*time.Second) != nil {
		t.Fatal("node 2 not back at its address")
	}

	// SIGTERM: a clean exit; a restart keeps the topic; a wiped one has none.
	if code := c.Terminate(0); code != 0 {
		t.Fatalf("SIGTERM: exit status %d", code)
	}
	if c.Running(0) {
		t.Fatal("running after Terminate")
	}
	c.Restart(0)
	topics := func() kadm.TopicDetails {
		t.Helper()
		// A new client each time: kadm answers from metadata cached for 5s.
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(0)))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		td, err := kadm.NewClient(cl).ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return td
	}
	wait.Eventually(t, "topic t after a restart", func() bool { return topics().Has("t") })
	c.Kill9(0)
	c.WipeData(0)
	if entries, _ := os.ReadDir(c.DataDir(0)); len(entries) != 0 {
		t.Fatalf("after WipeData: %d entries left", len(entries))
	}
	c.Restart(0)
	if topics().Has("t") {
		t.Fatal("topic t survived WipeData")
	}

	// Close kills a stopped node too.
	c.Stop(1)
	c.Close()
	if c.Running(0) || c.Running(1) {
		t.Fatal("running after Close")
	}
	if log, _ := os.ReadFile(c.LogPath(0)); strings.Count(string(log), "=== clustertest:") != 3 {
		t.Fatalf("node 1's log has %d starts, want 3:\n%s", strings.Count(string(log), "=== clustertest:"), log)
	}
}
