package broker

import (
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stratalog/strata/internal/wait"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// dialFrom opens a connection to the broker from a given loopback address.
func (tb *testBroker) dialFrom(t *testing.T, local string) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// served reports whether the connection answers an ApiVersions request.
func (r *rawConn) served() bool {
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(0)
	resp, err := r.request(req)
	return err == nil && resp.(*kmsg.ApiVersionsResponse).ErrorCode == 0
}

// closedByBroker reports whether the broker closed the connection without
// answering a request sent on it.
func (r *rawConn) closedByBroker() bool {
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(0)
	_, err := r.request(req)
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestMaxConnectionsClosesConnectionsBeyondTheLimit(t *testing.T) {
	tb := startBroker(t, "max.connections=3")
	var open []*rawConn
	for i := 0; i < 3; i++ {
		r := tb.raw()
		if !r.served() {
			t.Fatalf("connection %d within max.connections was not served", i)
		}
		open = append(open, r)
	}
	if extra := tb.raw(); !extra.closedByBroker() {
		t.Fatal("a fourth connection with max.connections=3 was served")
	}
	if n := counterValue(tb.srv.metrics.connsRefused.WithLabelValues("max.connections")); n != 1 {
		t.Errorf("strata_broker_connections_refused_total{limit=max.connections} = %v, want 1", n)
	}
	for i, r := range open {
		if !r.served() {
			t.Fatalf("connection %d within the limit stopped being served", i)
		}
	}
	// A closed connection frees its place.
	open[0].c.Close()
	wait.For(t, 30*time.Second, "a new connection after one closed", func() bool {
		return tb.raw().served()
	})
}

func TestMaxConnectionsPerIPAndOverrides(t *testing.T) {
	tb := startBroker(t, "max.connections.per.ip=2", "max.connections.per.ip.overrides=127.0.0.2:4,127.0.0.4:0")
	check := func(ip string, limit int) {
		t.Helper()
		var open []*rawConn
		for i := 0; i < limit; i++ {
			r := tb.dialFrom(t, ip)
			if !r.served() {
				t.Fatalf("%s: connection %d of %d was not served", ip, i+1, limit)
			}
			open = append(open, r)
		}
		if !tb.dialFrom(t, ip).closedByBroker() {
			t.Fatalf("%s: connection %d was served; the limit is %d", ip, limit+1, limit)
		}
		for i, r := range open {
			if !r.served() {
				t.Fatalf("%s: connection %d within the limit stopped being served", ip, i+1)
			}
		}
	}
	check("127.0.0.1", 2)
	check("127.0.0.2", 4) // override
	check("127.0.0.3", 2) // the default again
	check("127.0.0.4", 0) // an override of 0 refuses every connection
	if n := counterValue(tb.srv.metrics.connsRefused.WithLabelValues("max.connections.per.ip")); n != 4 {
		t.Errorf("strata_broker_connections_refused_total{limit=max.connections.per.ip} = %v, want 4", n)
	}
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	tb := startBroker(t, "connections.max.idle.ms=1500")
	idle, active := tb.raw(), tb.raw()
	if !idle.served() || !active.served() {
		t.Fatal("not served")
	}
	// The active connection sends requests back to back until the idle one
	// is closed; every request must be answered.
	closed := make(chan error, 1)
	go func() {
		idle.c.SetReadDeadline(time.Now().Add(time.Minute))
		var b [1]byte
		_, err := idle.c.Read(b[:])
		closed <- err
	}()
	for n := 0; ; n++ {
		select {
		case err := <-closed:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("idle connection still open after a minute with connections.max.idle.ms=1500 (%d requests on the active one)", n)
			}
			if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("idle connection: %v, want EOF", err)
			}
			if !active.served() {
				t.Fatal("active connection closed with the idle one")
			}
			if n := counterValue(tb.srv.metrics.idleClosed); n != 1 {
				t.Errorf("strata_broker_connections_idle_closed_total = %v, want 1", n)
			}
			return
		default:
		}
		if !active.served() {
			t.Fatalf("active connection closed after %d requests", n)
		}
	}
}

func TestSocketBufferKeysAreApplied(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel's reported buffer sizes are Linux's")
	}
	tb := startBroker(t, "socket.send.buffer.bytes=40000", "socket.receive.buffer.bytes=50000")
	r := tb.raw()
	if !r.served() {
		t.Fatal("not served")
	}
	// The broker's side of this connection.
	var sc syscall.RawConn
	tb.srv.mu.Lock()
	for nc := range tb.srv.mu.conns {
		if nc.RemoteAddr().String() == r.c.LocalAddr().String() {
			sc, _ = nc.(*net.TCPConn).SyscallConn()
		}
	}
	tb.srv.mu.Unlock()
	if sc == nil {
		t.Fatal("the broker has no such connection")
	}
	get := func(opt int) int {
		var v int
		var err error
		sc.Control(func(fd uintptr) { v, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt) })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Linux reports twice the value set (its bookkeeping overhead).
	if got := get(syscall.SO_SNDBUF); got != 2*40000 {
		t.Errorf("SO_SNDBUF = %d, want %d (socket.send.buffer.bytes=40000)", got, 2*40000)
	}
	if got := get(syscall.SO_RCVBUF); got != 2*50000 {
		t.Errorf("SO_RCVBUF = %d, want %d (socket.receive.buffer.bytes=50000)", got, 2*50000)
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}
