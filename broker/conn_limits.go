package broker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/stratalog/strata/config"
)

// connLimits are max.connections, max.connections.per.ip and its overrides.
// A connection beyond them is closed as soon as it is accepted, as Kafka
// closes a connection over its per-IP quota.
type connLimits struct {
	total     int64
	perIP     int64
	overrides map[netip.Addr]int64
}

// newConnLimits resolves the host names of max.connections.per.ip.overrides
// (once, at start-up, as Kafka does when it reads its configuration).
func newConnLimits(cfg *config.Broker) (connLimits, error) {
	l := connLimits{total: cfg.MaxConnections, perIP: cfg.MaxConnectionsPerIP, overrides: map[netip.Addr]int64{}}
	hosts, err := config.ParseIPOverrides(cfg.MaxConnectionsPerIPOverrides)
	if err != nil {
		return l, fmt.Errorf("max.connections.per.ip.overrides: %w", err)
	}
	for host, n := range hosts {
		if a, err := netip.ParseAddr(host); err == nil {
			l.overrides[a.Unmap()] = n
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil {
			return l, fmt.Errorf("max.connections.per.ip.overrides: cannot resolve %q: %w", host, err)
		}
		for _, a := range addrs {
			l.overrides[a.Unmap()] = n
		}
	}
	return l, nil
}

// limitFor is the number of connections ip may hold.
func (l connLimits) limitFor(ip netip.Addr) int64 {
	if n, ok := l.overrides[ip]; ok {
		return n
	}
	return l.perIP
}

// remoteIP is the address a connection came from (the zero Addr if it is not
// IP, as in tests over pipes).
func remoteIP(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// admitLocked counts nc in if the limits allow it and returns the limit it
// is over otherwise. s.mu must be held.
func (s *Server) admitLocked(nc net.Conn, ip netip.Addr) (over string) {
	if int64(len(s.mu.conns)) >= s.limits.total {
		return "max.connections"
	}
	if s.mu.perIP[ip] >= s.limits.limitFor(ip) {
		return "max.connections.per.ip"
	}
	s.mu.conns[nc] = struct{}{}
	s.mu.perIP[ip]++
	return ""
}

// forgetLocked undoes admitLocked. s.mu must be held.
func (s *Server) forgetLocked(nc net.Conn, ip netip.Addr) {
	delete(s.mu.conns, nc)
	if s.mu.perIP[ip]--; s.mu.perIP[ip] <= 0 {
		delete(s.mu.perIP, ip)
	}
}

// setSocketBuffers applies socket.send.buffer.bytes and
// socket.receive.buffer.bytes to an accepted connection; -1 leaves the OS
// default (on Linux, autotuning, which a fixed size turns off).
func (s *Server) setSocketBuffers(nc net.Conn) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	if n := s.cfg.SocketSendBufferBytes; n >= 0 {
		if err := tc.SetWriteBuffer(int(n)); err != nil {
			s.log.Warn("cannot set socket.send.buffer.bytes", "err", err)
		}
	}
	if n := s.cfg.SocketReceiveBufferBytes; n >= 0 {
		if err := tc.SetReadBuffer(int(n)); err != nil {
			s.log.Warn("cannot set socket.receive.buffer.bytes", "err", err)
		}
	}
}

// listenConfig sets socket.receive.buffer.bytes on the listening socket
// before listen(2), so that the window scale of accepted connections is
// chosen for it (Kafka sets it on its server socket too).
func (s *Server) listenConfig() *net.ListenConfig {
	n := s.cfg.SocketReceiveBufferBytes
	if n < 0 {
		return &net.ListenConfig{}
	}
	return &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, int(n))
		}); err != nil {
			return err
		}
		return serr
	}}
}
