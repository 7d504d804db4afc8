package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stratalog/strata/internal/clusterspec"
)

// procCluster is N `strata serve` child processes forming one cluster with
// issue 12's command lines (internal/clusterspec) on free loopback ports,
// every node a broker and a controller (an embedded etcd member), tiering
// to one shared file:// store. Each node's output goes to node-<id>.log in
// the run's directory.
type procCluster struct {
	bin   string
	dir   string
	nodes []clusterspec.Node
	args  [][]string

	mu    sync.Mutex
	procs []*exec.Cmd
	done  []chan struct{}
}

// startProcCluster starts n nodes with the extra settings and waits until
// every node's Metadata lists all n brokers.
func startProcCluster(ctx context.Context, bin, dir string, n int, extra []string) (*procCluster, error) {
	ports, err := clusterspec.LoopbackPorts(n)
	if err != nil {
		return nil, err
	}
	c := &procCluster{bin: bin, dir: dir, procs: make([]*exec.Cmd, n), done: make([]chan struct{}, n)}
	for i := range n {
		nd := clusterspec.Node{ID: i + 1, Host: "127.0.0.1", Port: ports[i][0], Ctrl: ports[i][1], DataDir: filepath.Join(dir, "data-"+strconv.Itoa(i+1))}
		if err := os.MkdirAll(nd.DataDir, 0o755); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, nd)
	}
	shared := filepath.Join(dir, "shared-tier")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		return nil, err
	}
	spec := clusterspec.Spec{Voters: clusterspec.Voters(c.nodes), RemoteURL: "file://" + shared, Extra: extra}
	for _, nd := range c.nodes {
		c.args = append(c.args, spec.Args(nd))
	}
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			c.close()
			return nil, err
		}
	}
	for i := range c.nodes {
		if err := c.waitJoined(ctx, i); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *procCluster) logPath(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("node-%d.log", i+1))
}

// start starts node i's process (not running).
func (c *procCluster) start(i int) error {
	logf, err := os.OpenFile(c.logPath(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, c.args[i]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a signal reaches it alone; and killed if
	// the benchmark dies before it stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("bench: start node %d: %w", i+1, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	c.mu.Lock()
	c.procs[i], c.done[i] = cmd, done
	c.mu.Unlock()
	return nil
}

func (c *procCluster) running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return clusterspec.Alive(c.done[i])
}

// signal sends sig to node i and returns the channel closed at its exit
// (nil if it was not running).
func (c *procCluster) signal(i int, sig syscall.Signal) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done[i] == nil {
		return nil
	}
	select {
	case <-c.done[i]:
		return nil
	default:
	}
	syscall.Kill(-c.procs[i].Process.Pid, sig)
	return c.done[i]
}

// kill9 kills node i with SIGKILL and waits until the kernel has reaped it.
func (c *procCluster) kill9(i int) error {
	done := c.signal(i, syscall.SIGKILL)
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("bench: node %d still there 30s after SIGKILL", i+1)
	}
}

// terminate sends node i SIGTERM and returns when it has exited, with its
// exit code (SIGKILL after two minutes, and an error).
func (c *procCluster) terminate(i int) (int, error) {
	done := c.signal(i, syscall.SIGTERM)
	if done == nil {
		return -1, nil
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		c.kill9(i)
		return -1, fmt.Errorf("bench: node %d did not exit within 2 minutes of SIGTERM; killed", i+1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i].ProcessState.ExitCode(), nil
}

// restart starts node i again (same command line and directories) and waits
// until it has joined.
func (c *procCluster) restart(ctx context.Context, i int) error {
	if c.running(i) {
		return fmt.Errorf("bench: restart of node %d, which is running", i+1)
	}
	if err := c.start(i); err != nil {
		return err
	}
	return c.waitJoined(ctx, i)
}

// close kills every node; safe to call more than once.
func (c *procCluster) close() {
	for i := range c.nodes {
		c.signal(i, syscall.SIGCONT)
		c.kill9(i)
	}
}

func (c *procCluster) addr(i int) string { return c.nodes[i].Addr() }

// seeds are the PLAINTEXT addresses of every node.
func (c *procCluster) seeds() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// live is the index of a running node other than not (-1: any), or -1.
func (c *procCluster) live(not int) int {
	for i := range c.nodes {
		if i != not && c.running(i) {
			return i
		}
	}
	return -1
}

// waitJoined waits until node i's Metadata lists every running node, failing
// at once if the node exits.
func (c *procCluster) waitJoined(ctx context.Context, i int) error {
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for {
		if !c.running(i) {
			return fmt.Errorf("bench: node %d exited during start-up; see %s", i+1, c.logPath(i))
		}
		want := 0
		for j := range c.nodes {
			if c.running(j) {
				want++
			}
		}
		md, err := c.metadataFrom(ctx, i)
		if err == nil && len(md.Brokers) == want {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%d brokers listed, %d running", len(md.Brokers), want)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: node %d did not join within 90s: %v; see %s", i+1, last, c.logPath(i))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// metadataFrom asks node i alone for the cluster's metadata (every topic).
func (c *procCluster) metadataFrom(ctx context.Context, i int, topics ...string) (kadm.Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addr(i)), kgo.RequestRetries(0))
	if err != nil {
		return kadm.Metadata{}, err
	}
	defer cl.Close()
	return kadm.NewClient(cl).Metadata(ctx, topics...)
}

// partitions is topic's partitions as a running node other than not sees
// them.
func (c *procCluster) partitions(ctx context.Context, topic string, not int) (kadm.PartitionDetails, error) {
	i := c.live(not)
	if i < 0 {
		return nil, errors.New("bench: no running node")
	}
	md, err := c.metadataFrom(ctx, i, topic)
	if err != nil {
		return nil, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("bench: topic %s: %v", topic, td.Err)
	}
	return td.Partitions, nil
}

// waitInSync waits until every partition of topic has a leader and all rf
// replicas in its ISR.
func (c *procCluster) waitInSync(ctx context.Context, topic string, rf int) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for {
		ps, err := c.partitions(ctx, topic, -1)
		if err == nil {
			ok := len(ps) > 0
			for _, p := range ps {
				if p.Leader < 0 || len(p.ISR) < rf || p.Err != nil {
					ok = false
					last = fmt.Sprintf("partition %d: leader %d, isr %v, %v", p.Partition, p.Leader, p.ISR, p.Err)
				}
			}
			if ok {
				return nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s not fully in sync after 2 minutes: %s", topic, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// etcdLeader is the node.id of the embedded etcd cluster's leader, from the
// first node that answers (0 if none).
func (c *procCluster) etcdLeader(ctx context.Context) int {
	for i, n := range c.nodes {
		if !c.running(i) {
			continue
		}
		ep := n.EtcdClientAddr()
		cl, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 2 * time.Second})
		if err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cl.Status(sctx, ep)
		var leader uint64
		if err == nil {
			leader = st.Leader
		}
		var id int
		if leader != 0 {
			if ml, err := cl.MemberList(sctx); err == nil {
				for _, m := range ml.Members {
					if m.ID == leader {
						id = memberNode(c, m.PeerURLs)
					}
				}
			}
		}
		cancel()
		cl.Close()
		if id > 0 {
			return id
		}
	}
	return 0
}

// memberNode maps an etcd member's peer URLs to the node.id whose
// CONTROLLER address they name.
func memberNode(c *procCluster, urls []string) int {
	for _, u := range urls {
		for _, n := range c.nodes {
			if u == fmt.Sprintf("http://%s:%d", n.Host, n.Ctrl) {
				return n.ID
			}
		}
	}
	return 0
}

// createTopicRF creates topic with partitions and replication factor rf.
func createTopicRF(ctx context.Context, seeds []string, topic string, partitions, rf int, configs map[string]*string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), int16(rf), configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("bench: create topic %s (rf %d): %w", topic, rf, err)
	}
	return nil
}

// cpu is the user + system CPU of every running node so far.
func (c *procCluster) cpu() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum time.Duration
	for i, p := range c.procs {
		if p == nil || p.Process == nil {
			continue
		}
		select {
		case <-c.done[i]:
			continue
		default:
		}
		if u, s, err := procCPU(p.Process.Pid); err == nil {
			sum += u + s
		}
	}
	return sum
}

// etcdWatch records when each change under /strata/ reached this process,
// to tell the parts of a failover apart: the broker's registration deleted
// (its lease expired, or it deregistered) and the controller's writes of
// partition states.
type etcdWatch struct {
	cl     *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []etcdEvent // guarded by mu
}

type etcdEvent struct {
	at      time.Time
	key     string
	deleted bool
}

func (c *procCluster) watchEtcd(ctx context.Context) (*etcdWatch, error) {
	var eps []string
	for _, n := range c.nodes {
		eps = append(eps, n.EtcdClientAddr())
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w := &etcdWatch{cl: cl, cancel: cancel, done: make(chan struct{})}
	ch := cl.Watch(ctx, "/strata/", clientv3.WithPrefix())
	go func() {
		defer close(w.done)
		for resp := range ch {
			now := time.Now()
			w.mu.Lock()
			for _, ev := range resp.Events {
				w.events = append(w.events, etcdEvent{at: now, key: string(ev.Kv.Key), deleted: ev.Type == clientv3.EventTypeDelete})
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func (w *etcdWatch) stop() {
	w.cancel()
	<-w.done
	w.cl.Close()
}

// first is the time of the first event at or after t on key (deleted or
// not, as asked); zero if none.
func (w *etcdWatch) first(t time.Time, key string, deleted bool) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if !e.at.Before(t) && e.key == key && e.deleted == deleted {
			return e.at
		}
	}
	return time.Time{}
}
