package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/checker"
	"github.com/stratalog/strata/internal/clusterspec"
	"github.com/stratalog/strata/internal/wait"
)

// Guards on waits for processes (never assertions about speed: the tests run
// under -race on two shared cores).
const (
	startTimeout = 90 * time.Second  // a node's start until it answers ApiVersions
	stopTimeout  = 120 * time.Second // SIGTERM until exit (a controlled shutdown moves leaderships first)
	killTimeout  = 30 * time.Second  // SIGKILL until the kernel reaps it
)

// Options says what Start starts.
type Options struct {
	Brokers int      // how many processes; default 3 (1 with Single)
	Extra   []string // more --set key=value for every node, after the harness's own
	// PerNode gives node i's own --set key=value (after Extra); nil for none.
	PerNode func(i int) []string
	// PerNodeEnv gives node i's own environment variables (KEY=value, added
	// to the test's) for its first start; SetEnv changes them for the next.
	PerNodeEnv func(i int) []string
	// RemoteURL is the object store every node shares (remote.storage.url);
	// default file://<tmp>/shared-tier. With Single it is passed only if set.
	RemoteURL string
	// Netns runs each node in its own network namespace (netns.go).
	Netns bool
	// Single starts plain single nodes (no node.id, roles, controller or
	// voters): independent brokers, each its own one-node cluster.
	Single bool
	// WaitReady, if set, runs after node i answers ApiVersions, at Start (for
	// each node, once all are started) and at Restart: a cluster test waits
	// there until the node has joined (MetadataListsAll is one such wait).
	WaitReady func(t testing.TB, c *Cluster, i int)
}

// Cluster is N strata processes started by Start.
type Cluster struct {
	t      testing.TB
	opts   Options
	dir    string
	bin    string
	nodes  []*node
	net    *netnsNet // nil without Netns
	closed sync.Once
}

type node struct {
	id      int // node.id, i+1
	host    string
	port    int // PLAINTEXT
	ctrl    int // CONTROLLER (etcd's peer URL); ctrl+1 is etcd's client URL
	dataDir string
	logPath string
	args    []string // strata's arguments
	ns      string   // network namespace, or ""
	env     []string // added to the environment at each start

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
	state *os.ProcessState
}

// Start builds strata (once per test binary), starts the nodes and waits
// until each answers ApiVersions (and opts.WaitReady). Every process, and
// every network namespace, is removed when the test ends, failed or not.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Brokers <= 0 {
		opts.Brokers = 3
		if opts.Single {
			opts.Brokers = 1
		}
	}
	c := &Cluster{t: t, opts: opts, dir: t.TempDir(), bin: Binary(t)}
	t.Cleanup(c.Close) // after TempDir's: runs before the directory is removed
	if opts.Netns {
		c.net = setupNetns(t, opts.Brokers)
	}
	c.nodes = make([]*node, opts.Brokers)
	ports := c.ports(opts.Brokers)
	for i := range c.nodes {
		n := &node{id: i + 1, host: "127.0.0.1", port: ports[i][0], ctrl: ports[i][1],
			dataDir: filepath.Join(c.dir, "data-"+strconv.Itoa(i+1)),
			logPath: filepath.Join(c.dir, "node-"+strconv.Itoa(i+1)+".log")}
		if c.net != nil {
			n.host, n.ns = c.net.nodeAddr(i), c.net.nodes[i]
		}
		if err := os.MkdirAll(n.dataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		c.nodes[i] = n
	}
	remote := opts.RemoteURL
	if remote == "" && !opts.Single {
		shared := filepath.Join(c.dir, "shared-tier")
		if err := os.MkdirAll(shared, 0o755); err != nil {
			t.Fatal(err)
		}
		remote = "file://" + shared
	}
	var voters []string
	for _, n := range c.nodes {
		voters = append(voters, fmt.Sprintf("%d@%s:%d", n.id, n.host, n.ctrl))
	}
	c.buildArgs(remote, voters)
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.waitReady(t, i)
	}
	return c
}

// buildArgs writes each node's command line: the issue's, in this order
// (clusterspec.Spec.Args).
func (c *Cluster) buildArgs(remote string, voters []string) {
	spec := clusterspec.Spec{Single: c.opts.Single, Voters: strings.Join(voters, ","), RemoteURL: remote, Extra: c.opts.Extra}
	for i, n := range c.nodes {
		var own []string
		if c.opts.PerNode != nil {
			own = c.opts.PerNode(i)
		}
		n.args = spec.Args(clusterspec.Node{ID: n.id, Host: n.host, Port: n.port, Ctrl: n.ctrl, DataDir: n.dataDir}, own...)
		if c.opts.PerNodeEnv != nil {
			n.env = c.opts.PerNodeEnv(i)
		}
	}
}

// SetEnv replaces the environment variables node i gets at its next start
// (KEY=value, added to the test's; none for nothing added).
func (c *Cluster) SetEnv(i int, env ...string) {
	n := c.node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.env = env
}

// ports picks each node's PLAINTEXT port and a CONTROLLER port whose next
// port is free too (etcd's client URL), all distinct (clusterspec). In
// namespaces every node has its own address, and the ports are Kafka's
// usual ones.
func (c *Cluster) ports(count int) [][2]int {
	if c.net != nil {
		out := make([][2]int, count)
		for i := range out {
			out[i] = [2]int{9092, 9093}
		}
		return out
	}
	out, err := clusterspec.LoopbackPorts(count)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *Cluster) node(i int) *node {
	if i < 0 || i >= len(c.nodes) {
		c.t.Fatalf("clustertest: no node %d (the cluster has %d)", i, len(c.nodes))
	}
	return c.nodes[i]
}

// start starts node i's process (not running).
func (c *Cluster) start(i int) {
	n := c.node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== clustertest: %s start node %d: strata %s\n", time.Now().Format(time.RFC3339Nano), n.id, strings.Join(n.args, " "))
	var cmd *exec.Cmd
	if n.ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.ns, c.bin}, n.args...)...)
	} else {
		cmd = exec.Command(c.bin, n.args...)
	}
	if len(n.env) > 0 {
		cmd.Env = append(os.Environ(), n.env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so signals reach it alone; killed if the test
	// binary dies before its cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("clustertest: start node %d: %v", n.id, err)
	}
	n.cmd, n.done, n.state = cmd, make(chan struct{}), nil
	done := n.done
	go func() {
		cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.state = cmd.ProcessState
		n.mu.Unlock()
		close(done)
	}()
}

// waitReady waits until node i answers ApiVersions, failing at once (with its
// log) if it exits instead; then opts.WaitReady.
func (c *Cluster) waitReady(t testing.TB, i int) {
	t.Helper()
	n := c.node(i)
	var last error
	ok := wait.Until(startTimeout, func() bool {
		if !c.Running(i) {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		last = checker.Ping(ctx, c.Addr(i), c.DialContext)
		return last == nil
	})
	if !c.Running(i) {
		t.Fatalf("clustertest: node %d exited during start-up (%v); log:\n%s", n.id, c.exitState(i), tail(n.logPath))
	}
	if !ok {
		t.Fatalf("clustertest: node %d did not answer ApiVersions at %s within %v: %v; log:\n%s", n.id, c.Addr(i), startTimeout, last, tail(n.logPath))
	}
	if c.opts.WaitReady != nil {
		c.opts.WaitReady(t, c, i)
	}
}

func (c *Cluster) exitState(i int) string {
	n := c.node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == nil {
		return "running"
	}
	return n.state.String()
}

// Brokers is how many nodes the cluster has.
func (c *Cluster) Brokers() int { return len(c.nodes) }

// Addr is node i's PLAINTEXT address, host:port.
func (c *Cluster) Addr(i int) string {
	n := c.node(i)
	return net.JoinHostPort(n.host, strconv.Itoa(n.port))
}

// ControllerAddr is node i's CONTROLLER address (etcd's peer URL; its client
// URL is at the next port).
func (c *Cluster) ControllerAddr(i int) string {
	n := c.node(i)
	return net.JoinHostPort(n.host, strconv.Itoa(n.ctrl))
}

// Bootstrap is every node's PLAINTEXT address.
func (c *Cluster) Bootstrap() []string {
	out := make([]string, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.Addr(i)
	}
	return out
}

// Args is node i's strata command line (without the binary).
func (c *Cluster) Args(i int) []string { return append([]string(nil), c.node(i).args...) }

// DataDir is node i's log.dirs.
func (c *Cluster) DataDir(i int) string { return c.node(i).dataDir }

// LogPath is the file node i's stdout and stderr go to (appended across restarts).
func (c *Cluster) LogPath(i int) string { return c.node(i).logPath }

// Running reports whether node i's process has been started and has not
// exited (a SIGSTOPped node is running).
func (c *Cluster) Running(i int) bool {
	n := c.node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	return clusterspec.Alive(n.done)
}

// signal sends sig to node i's process group; false if it is not running.
func (c *Cluster) signal(i int, sig syscall.Signal) (chan struct{}, bool) {
	n := c.node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		return nil, false
	}
	select {
	case <-n.done:
		return n.done, false
	default:
	}
	syscall.Kill(-n.cmd.Process.Pid, sig)
	return n.done, true
}

// Kill9 kills node i with SIGKILL and waits until it is gone. A node not
// running is left as it is.
func (c *Cluster) Kill9(i int) {
	done, ok := c.signal(i, syscall.SIGKILL)
	if !ok {
		return
	}
	select {
	case <-done:
	case <-time.After(killTimeout):
		c.t.Errorf("clustertest: node %d still there %v after SIGKILL", i+1, killTimeout)
	}
}

// Stop freezes node i with SIGSTOP (its sockets stay open, it answers nothing).
func (c *Cluster) Stop(i int) { c.signal(i, syscall.SIGSTOP) }

// Cont resumes node i after Stop.
func (c *Cluster) Cont(i int) { c.signal(i, syscall.SIGCONT) }

// Terminate sends node i SIGTERM, waits for it to exit and returns its exit
// status (-1 if a signal ended it). A node that has not exited after two
// minutes fails the test and is killed. A node not running returns its last
// exit status (-1 if it never ran).
func (c *Cluster) Terminate(i int) int {
	c.signal(i, syscall.SIGCONT) // a stopped process cannot handle SIGTERM
	done, ok := c.signal(i, syscall.SIGTERM)
	if ok {
		select {
		case <-done:
		case <-time.After(stopTimeout):
			c.t.Errorf("clustertest: node %d did not exit within %v of SIGTERM; killing it", i+1, stopTimeout)
			c.Kill9(i)
		}
	}
	n := c.node(i)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == nil {
		return -1
	}
	return n.state.ExitCode()
}

// Restart starts node i again, with the same command line and directories,
// and waits as Start does. The node must not be running (Kill9 or Terminate
// it first).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("clustertest: Restart(%d): node %d is running; Kill9 or Terminate it first", i, i+1)
	}
	c.start(i)
	c.waitReady(c.t, i)
}

// WipeData removes everything in node i's log.dirs (segments, indexes,
// checkpoints, meta.db: the whole local state, as a replaced disk), leaving
// the directory itself. The shared remote store is not touched. The node must
// not be running.
func (c *Cluster) WipeData(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.t.Fatalf("clustertest: WipeData(%d): node %d is running; Kill9 or Terminate it first", i, i+1)
	}
	dir := c.node(i).dataDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			c.t.Fatal(err)
		}
	}
}

// DialContext dials addr as the test's clients do: from the client network
// namespace with Netns, else from here. Give it to franz-go as kgo.Dialer.
func (c *Cluster) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.net != nil {
		return c.net.dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// ClientCmd is a command run where the test's clients run: inside the client
// network namespace with Netns, else directly. With Netns, it reaches the
// brokers and nothing else.
func (c *Cluster) ClientCmd(ctx context.Context, args ...string) *exec.Cmd {
	if len(args) == 0 {
		c.t.Fatal("clustertest: ClientCmd with no command")
	}
	if c.net != nil {
		return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.net.client}, args...)...)
	}
	return exec.CommandContext(ctx, args[0], args[1:]...)
}

// StrataBinary is the strata binary the nodes run, for ClientCmd(ctx,
// c.StrataBinary(), "check", ...).
func (c *Cluster) StrataBinary() string { return c.bin }

// Close kills every node (SIGCONT first, so a stopped one dies too), shows
// the end of each node's log if the test failed, and removes the network
// namespaces. Start registers it with t.Cleanup; calling it twice is fine.
func (c *Cluster) Close() {
	c.closed.Do(func() {
		for i := range c.nodes {
			c.Cont(i)
			c.Kill9(i)
		}
		if c.t.Failed() {
			for _, n := range c.nodes {
				c.t.Logf("clustertest: node %d (%s), end of its log:\n%s", n.id, strings.Join(n.args, " "), tail(n.logPath))
			}
		}
		if c.net != nil {
			c.net.teardown(c.t)
		}
	})
}

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	const max = 16 << 10
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
		return "...\n" + string(b)
	}
	return string(b)
}
