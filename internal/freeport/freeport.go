// Package freeport finds free TCP ports on the loopback address, for tests,
// the benchmark and the MinIO harness, which start servers on them.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Get returns a port on 127.0.0.1 that was free a moment ago. Another process
// may take it before the caller binds it; callers that can retry do.
func Get() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Holder picks ports outside the kernel's ephemeral range and holds each
// one's listener until Release, so that ports picked by one Holder are
// distinct. A server that is stopped and started again on such a port does
// not find it taken by some client's outgoing connection, which the kernel
// numbers from the ephemeral range (it happened: "bind: address already in
// use" on a restart, and on an etcd member's first start while other tests'
// clients ran).
type Holder struct {
	held []net.Listener
}

// Stable returns a free port outside the ephemeral range, held until Release.
func (h *Holder) Stable() (int, error) {
	lo, hi := stableRange()
	for range 100 {
		if p, ok := h.listen(lo + rand.IntN(hi-lo)); ok {
			return p, nil
		}
	}
	return 0, errors.New("freeport: no free loopback port outside the ephemeral range in 100 tries")
}

// StablePair returns a free port p outside the ephemeral range with p+1 free
// too (an etcd member's peer and client URLs), both held until Release.
func (h *Holder) StablePair() (int, error) {
	lo, hi := stableRange()
	for range 100 {
		p, ok := h.listen(lo + rand.IntN(hi-lo-1))
		if !ok {
			continue
		}
		if _, ok := h.listen(p + 1); ok {
			return p, nil
		}
	}
	return 0, errors.New("freeport: no free pair of consecutive loopback ports in 100 tries")
}

// Release closes the held listeners: the caller is about to bind the ports.
func (h *Holder) Release() {
	for _, l := range h.held {
		l.Close()
	}
	h.held = nil
}

func (h *Holder) listen(port int) (int, bool) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, false
	}
	h.held = append(h.held, l)
	return port, true
}

// Stable returns one free port outside the ephemeral range.
func Stable() (int, error) {
	var h Holder
	defer h.Release()
	return h.Stable()
}

// stableRange is where Stable picks: below the kernel's ephemeral ports
// (net.ipv4.ip_local_port_range), else above them.
func stableRange() (lo, hi int) {
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
