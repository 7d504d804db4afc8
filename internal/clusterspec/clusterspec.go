// Package clusterspec is the pure part of starting a strata cluster on this
// machine: free loopback ports for each node and each node's `strata serve`
// command line, with issue 12's keys in the order. The test harness
// (internal/clustertest) and the benchmark (`strata bench --cluster`) both
// use it; it starts nothing and does not import testing.
package clusterspec

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
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
// distinct, outside the kernel's ephemeral range: a node restarted on the
// same ports must not find one taken by some client's outgoing connection
// (it happened: "bind: address already in use" on a restart). They were free
// a moment ago: another process may take one before the node binds it.
func LoopbackPorts(count int) ([][2]int, error) {
	lo, hi := portRange()
	out := make([][2]int, count)
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	listen := func(port int) (int, bool) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return 0, false
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, true
	}
	for i := range out {
		for attempt := 0; ; attempt++ {
			if attempt == 100 {
				return nil, errors.New("clusterspec: no free pair of consecutive loopback ports in 100 tries")
			}
			ctrl, ok := listen(lo + rand.IntN(hi-lo))
			if !ok {
				continue
			}
			if _, ok := listen(ctrl + 1); ok {
				out[i][1] = ctrl
				break
			}
		}
		for attempt := 0; ; attempt++ {
			if attempt == 100 {
				return nil, errors.New("clusterspec: no free loopback port in 100 tries")
			}
			if p, ok := listen(lo + rand.IntN(hi-lo)); ok {
				out[i][0] = p
				break
			}
		}
	}
	return out, nil
}

// portRange is where LoopbackPorts picks: below the kernel's ephemeral
// ports (net.ipv4.ip_local_port_range), else above them.
func portRange() (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if a, err1 := strconv.Atoi(f[0]); err1 == nil {
				if z, err2 := strconv.Atoi(f[1]); err2 == nil && a <= z {
					elo, ehi = a, z
				}
			}
		}
	}
	if elo-2 > 12000 {
		return 10000, elo - 2
	}
	return ehi + 1, 65533
}
