// Package clusterspec is the pure part of starting a strata cluster on this
// machine: free loopback ports for each node and each node's `strata serve`
// command line, with issue 12's keys in the order. The test harness
// (internal/clustertest) and the benchmark (`strata bench --cluster`) both
// use it; it starts nothing and does not import testing.
package clusterspec

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/stratalog/strata/internal/freeport"
)

// Node is one strata process of a cluster.
type Node struct {
	ID      int    // node.id
	Host    string // the address both listeners bind
	Port    int    // PLAINTEXT
	Ctrl    int    // CONTROLLER (etcd's peer URL); Ctrl+1 is etcd's client URL
	DataDir string // log.dirs
}

// Addr is the node's PLAINTEXT address, host:port.
func (n Node) Addr() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

// EtcdClientAddr is the embedded etcd member's client address: the
// CONTROLLER port + 1.
func (n Node) EtcdClientAddr() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.Ctrl+1)) }

// Voters is controller.quorum.voters for nodes: id@host:ctrl,...
func Voters(nodes []Node) string {
	vs := make([]string, len(nodes))
	for i, n := range nodes {
		vs[i] = fmt.Sprintf("%d@%s:%d", n.ID, n.Host, n.Ctrl)
	}
	return strings.Join(vs, ",")
}

// Spec is what every node's command line shares.
type Spec struct {
	// Single starts plain single nodes: no node.id, roles, CONTROLLER
	// listener or voters.
	Single bool
	// Voters is controller.quorum.voters (Voters(nodes)); unused with Single.
	Voters string
	// RemoteURL is remote.storage.url, passed if set.
	RemoteURL string
	// Extra are more key=value settings, after the spec's own.
	Extra []string
}

// Args is node n's strata command line (without the binary): serve, then
// --set key=value for node.id, process.roles, listeners,
// controller.quorum.voters, log.dirs, remote.storage.url,
// group.initial.rebalance.delay.ms=0, then s.Extra and extra.
func (s Spec) Args(n Node, extra ...string) []string {
	args := []string{"serve"}
	set := func(kv string) { args = append(args, "--set", kv) }
	if s.Single {
		set(fmt.Sprintf("listeners=PLAINTEXT://%s:%d", n.Host, n.Port))
	} else {
		set("node.id=" + strconv.Itoa(n.ID))
		set("process.roles=broker,controller")
		set(fmt.Sprintf("listeners=PLAINTEXT://%s:%d,CONTROLLER://%s:%d", n.Host, n.Port, n.Host, n.Ctrl))
		set("controller.quorum.voters=" + s.Voters)
	}
	set("log.dirs=" + n.DataDir)
	if s.RemoteURL != "" {
		set("remote.storage.url=" + s.RemoteURL)
	}
	set("group.initial.rebalance.delay.ms=0")
	for _, kv := range s.Extra {
		set(kv)
	}
	for _, kv := range extra {
		set(kv)
	}
	return args
}

// LoopbackPorts picks, for each of count nodes, a free PLAINTEXT port and a
// free CONTROLLER port whose next port is free too (etcd's client URL), all
// distinct, outside the kernel's ephemeral range (freeport.Holder says why).
// They were free a moment ago: another process may take one before the node
// binds it.
func LoopbackPorts(count int) ([][2]int, error) {
	var h freeport.Holder
	defer h.Release()
	out := make([][2]int, count)
	for i := range out {
		ctrl, err := h.StablePair()
		if err != nil {
			return nil, fmt.Errorf("clusterspec: %w", err)
		}
		port, err := h.Stable()
		if err != nil {
			return nil, fmt.Errorf("clusterspec: %w", err)
		}
		out[i] = [2]int{port, ctrl}
	}
	return out, nil
}

// Alive reports whether a node process whose exit closes done was started
// (done is not nil) and has not exited: the test harness and the benchmark
// keep one such channel per process.
func Alive(done <-chan struct{}) bool {
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}
