package clustertest

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// clientPing runs `strata check ping` for node i from the client namespace.
func clientPing(t *testing.T, c *Cluster, i int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.ClientCmd(ctx, c.StrataBinary(), "check", "ping", "--timeout", "1s", "--brokers", c.Addr(i)).CombinedOutput()
	return string(out), err
}

// Two single nodes, each in its own namespace; a client process in the client
// namespace reaches both, then not the cut one, then, healed, both again.
func TestNetnsCutAndHeal(t *testing.T) {
	c := Start(t, Options{Single: true, Brokers: 2, Netns: true})
	for i := 0; i < 2; i++ {
		if out, err := clientPing(t, c, i); err != nil || !strings.Contains(out, c.Addr(i)+": ok") {
			t.Fatalf("ping node %d from the client namespace: %v\n%s", i+1, err, out)
		}
	}
	// The nodes' addresses exist only inside the namespaces.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if host, _, _ := net.SplitHostPort(c.Addr(0)); strings.HasPrefix(a.String(), host+"/") {
			t.Fatalf("node 1's address %s is in the root namespace", a)
		}
	}

	c.Cut(0)
	if out, err := clientPing(t, c, 0); err == nil {
		t.Fatalf("the cut node answered:\n%s", out)
	}
	if out, err := clientPing(t, c, 1); err != nil {
		t.Fatalf("node 2 unreachable while node 1 is cut: %v\n%s", err, out)
	}
	if !c.Running(0) {
		t.Fatal("the cut node exited")
	}
	c.Heal(0)
	wait.Eventually(t, "node 1 reachable after Heal", func() bool {
		_, err := clientPing(t, c, 0)
		return err == nil
	})
	// In-process clients dial from the client namespace too.
	if err := ping(c, 1, 5*time.Second); err != nil {
		t.Fatalf("in-process dial into the client namespace: %v", err)
	}
	// kill -9 and restart inside a namespace.
	c.Kill9(1)
	c.Restart(1)
	if out, err := clientPing(t, c, 1); err != nil {
		t.Fatalf("after restart: %v\n%s", err, out)
	}
	names := append([]string{c.net.hub, c.net.client}, c.net.nodes...)
	c.Close()
	list, _ := exec.Command("ip", "netns", "list").Output()
	for _, n := range names {
		if bytes.Contains(list, []byte(n)) {
			t.Fatalf("namespace %s left after Close:\n%s", n, list)
		}
	}
}

// A namespace named for a test process that is gone is removed at the next
// start; one of a live process is kept.
func TestNetnsRemovesStaleNamespaces(t *testing.T) {
	SkipUnlessNetns(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := nsPrefix + strconv.Itoa(dead.Process.Pid) + "-1-hub"
	live := nsPrefix + "1-1-hub" // pid 1 is alive
	for _, n := range []string{stale, live} {
		if err := ipCmd("netns", "add", n); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { ipCmd("netns", "del", live); ipCmd("netns", "del", stale) })
	removeStale(t)
	list, _ := exec.Command("ip", "netns", "list").Output()
	if bytes.Contains(list, []byte(stale)) || !bytes.Contains(list, []byte(live)) {
		t.Fatalf("after removeStale:\n%s", list)
	}
}
