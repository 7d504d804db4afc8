package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// The namespaces of one cluster: a hub holding a bridge (br0), one namespace
// per node and one for the clients, each joined to the bridge by a veth pair
// (eth0 inside, n<id> or client on the hub's side) with an address
// 10.X.Y.<id>/24 (the clients' is .200). The addresses exist only inside these
// namespaces, never in the root namespace.
//
// Names start with nsPrefix and the test process's pid, so a later run removes
// what a killed one left behind (stale: its pid is gone).
const nsPrefix = "strata-test-"

// RequireNetnsEnv, set to 1 (as make test does), turns a skip for want of
// network namespaces into a failure.
const RequireNetnsEnv = "STRATATEST_REQUIRE_NETNS"

var nsSeq atomic.Int64

type netnsNet struct {
	prefix string
	hub    string
	client string
	nodes  []string
	subnet string // "10.X.Y"
	all    []string

	mu sync.Mutex // serialises Cut and Heal
}

func (n *netnsNet) nodeAddr(i int) string { return fmt.Sprintf("%s.%d", n.subnet, i+1) }
func (n *netnsNet) clientAddr() string    { return n.subnet + ".200" }

// SkipUnlessNetns skips the test (fails it with STRATATEST_REQUIRE_NETNS=1)
// when this machine cannot create network namespaces, saying why.
func SkipUnlessNetns(t testing.TB) {
	t.Helper()
	if why := netnsUnavailable(); why != "" {
		if os.Getenv(RequireNetnsEnv) == "1" {
			t.Fatalf("network namespaces required (%s=1) but unavailable: %s", RequireNetnsEnv, why)
		}
		t.Skipf("network namespaces unavailable (%s); make deps installs iproute2, and the tests need root", why)
	}
}

var probe struct {
	once sync.Once
	why  string
}

func netnsUnavailable() string {
	probe.once.Do(func() {
		if _, err := exec.LookPath("ip"); err != nil {
			probe.why = "no ip command (iproute2)"
			return
		}
		name := fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			probe.why = fmt.Sprintf("ip netns add: %v: %s", err, bytes.TrimSpace(out))
			return
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	return probe.why
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// setupNetns creates the hub, the node namespaces and the client namespace.
func setupNetns(t testing.TB, count int) *netnsNet {
	t.Helper()
	SkipUnlessNetns(t)
	removeStale(t)
	p := fmt.Sprintf("%s%d-%d-", nsPrefix, os.Getpid(), nsSeq.Add(1))
	n := &netnsNet{prefix: p, hub: p + "hub", client: p + "client",
		subnet: fmt.Sprintf("10.%d.%d", 100+rand.IntN(150), rand.IntN(256))}
	ok := false
	defer func() {
		if !ok {
			n.teardown(t)
		}
	}()
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatalf("clustertest: network namespaces: %v", err)
		}
	}
	add := func(ns string) {
		must("netns", "add", ns)
		n.all = append(n.all, ns)
		must("-n", ns, "link", "set", "lo", "up")
	}
	add(n.hub)
	must("-n", n.hub, "link", "add", "br0", "type", "bridge")
	must("-n", n.hub, "link", "set", "br0", "up")
	join := func(ns, hubSide, addr string) {
		add(ns)
		must("-n", n.hub, "link", "add", hubSide, "type", "veth", "peer", "name", "eth0", "netns", ns)
		must("-n", n.hub, "link", "set", hubSide, "master", "br0")
		must("-n", n.hub, "link", "set", hubSide, "up")
		must("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		must("-n", ns, "link", "set", "eth0", "up")
	}
	for i := 0; i < count; i++ {
		ns := p + "n" + strconv.Itoa(i+1)
		n.nodes = append(n.nodes, ns)
		join(ns, "n"+strconv.Itoa(i+1), n.nodeAddr(i))
	}
	join(n.client, "client", n.clientAddr())
	ok = true
	return n
}

// teardown deletes every namespace (their veths go with them).
func (n *netnsNet) teardown(t testing.TB) {
	for i := len(n.all) - 1; i >= 0; i-- {
		if err := ipCmd("netns", "del", n.all[i]); err != nil {
			t.Errorf("clustertest: %v", err)
		}
	}
	n.all = nil
}

// removeStale deletes namespaces a killed earlier test process left.
func removeStale(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		rest := strings.TrimPrefix(f[0], nsPrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its test process still runs
		}
		if err := ipCmd("netns", "del", f[0]); err != nil {
			t.Logf("clustertest: removing stale namespace: %v", err)
		}
	}
}

// dial connects from inside the client namespace: the socket is made on a
// thread moved into that namespace, and stays there once made.
func (n *netnsNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + n.client)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{nil, fmt.Errorf("setns %s: %w", n.client, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		// Back to the original namespace; if that fails the thread stays
		// locked and ends with this goroutine, never reused.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

// Cut isolates node i: the hub's side of its veth goes down, so it reaches
// no other node and no client, and none reaches it (connections stay open
// and their packets are lost, as in a real partition). Netns only.
func (c *Cluster) Cut(i int) {
	c.t.Helper()
	c.setLink(i, "down")
}

// Heal undoes Cut(i).
func (c *Cluster) Heal(i int) {
	c.t.Helper()
	c.setLink(i, "up")
}

func (c *Cluster) setLink(i int, state string) {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatal("clustertest: Cut and Heal need Options.Netns")
	}
	c.node(i)
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	if err := ipCmd("-n", c.net.hub, "link", "set", "n"+strconv.Itoa(i+1), state); err != nil {
		c.t.Errorf("clustertest: %v", err)
	}
}
