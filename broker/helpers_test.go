package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/wire"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/tier"
)

// testBroker is an in-process broker on a free loopback port and a temporary
// directory.
type testBroker struct {
	t    testing.TB
	dir  string
	sets []string
	srv  *Server
	mgr  *tier.Manager
	meta *metadata.Store
	addr string
	done chan error
}

// startBroker starts a broker; sets are config overrides ("key=value").
func startBroker(t testing.TB, sets ...string) *testBroker {
	t.Helper()
	tb := &testBroker{t: t, dir: t.TempDir(), sets: sets}
	tb.start()
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBroker) start() {
	tb.t.Helper()
	sets := append([]string{"log.dirs=" + tb.dir, "listeners=PLAINTEXT://127.0.0.1:0", "group.initial.rebalance.delay.ms=0"}, tb.sets...)
	cfg, err := config.Load("", nil, sets)
	if err != nil {
		tb.t.Fatalf("config: %v", err)
	}
	tb.serve(cfg, testLogger(), nil)
}

// serve builds the node as cmd/strata does (internal/wire: the metadata
// store, the tier from remote.storage.url, then the broker) and serves it
// on a free loopback port.
func (tb *testBroker) serve(cfg *config.Broker, logger *slog.Logger, reg prometheus.Registerer) {
	tb.t.Helper()
	meta, err := wire.Meta(cfg)
	if err != nil {
		tb.t.Fatalf("metadata: %v", err)
	}
	mgr, closeTier, err := wire.Tier(cfg, meta, logger, reg)
	if err != nil {
		meta.Close()
		tb.t.Fatalf("tier: %v", err)
	}
	srv, err := New(cfg, Options{Logger: logger, Registerer: reg, Meta: meta, Tier: mgr, Closers: []func() error{closeTier}})
	if err != nil {
		closeTier()
		meta.Close()
		tb.t.Fatalf("broker: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		meta.Close()
		tb.t.Fatal(err)
	}
	tb.srv, tb.mgr, tb.meta = srv, mgr, meta
	tb.done = make(chan error, 1)
	go func() { tb.done <- srv.Serve(l) }()
	tb.addr = l.Addr().String()
}

// stop shuts the broker down cleanly; safe to call twice.
func (tb *testBroker) stop() {
	if tb.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tb.srv.Shutdown(ctx); err != nil && err != ErrServerClosed {
		tb.t.Errorf("shutdown: %v", err)
	}
	<-tb.done
	if err := tb.meta.Close(); err != nil {
		tb.t.Errorf("metadata: %v", err)
	}
	tb.srv, tb.mgr, tb.meta = nil, nil, nil
}

func (tb *testBroker) restart() {
	tb.stop()
	tb.start()
}

func (tb *testBroker) client(opts ...kgo.Opt) *kgo.Client {
	tb.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tb.addr)}, opts...)...)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(cl.Close)
	return cl
}

func (tb *testBroker) admin() *kadm.Client {
	return kadm.NewClient(tb.client())
}

func (tb *testBroker) createTopic(name string, partitions int32, configs map[string]*string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := tb.admin().CreateTopic(ctx, partitions, 1, configs, name)
	if err != nil || resp.Err != nil {
		tb.t.Fatalf("create topic %s: %v %v", name, err, resp.Err)
	}
}

// rawConn is a hand-driven protocol connection for edge cases.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	corr int32
}

func (tb *testBroker) raw() *rawConn {
	tb.t.Helper()
	c, err := net.DialTimeout("tcp", tb.addr, 5*time.Second)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(func() { c.Close() })
	return &rawConn{t: tb.t, c: c}
}

// frame encodes req at its set version as a request frame (next
// correlation id, client id "test").
func (r *rawConn) frame(req kmsg.Request) []byte {
	r.corr++
	b := make([]byte, 4, 64)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(r.corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// request sends req at its set version and decodes the response into a new
// response of the same kind.
func (r *rawConn) request(req kmsg.Request) (kmsg.Response, error) {
	if err := r.send(r.frame(req)); err != nil {
		return nil, err
	}
	body, err := r.readFrame()
	if err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != r.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", got, r.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:]
	}
	return resp, resp.ReadFrom(body)
}

func (r *rawConn) send(b []byte) error {
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.c.Write(b)
	return err
}

func (r *rawConn) readFrame() ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sz [4]byte
	if _, err := io.ReadFull(r.c, sz[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(sz[:]))
	_, err := io.ReadFull(r.c, body)
	return body, err
}

// expectClosed asserts the broker closes the connection (EOF), not a hang.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err := r.c.Read(b[:])
	if err == nil {
		r.t.Fatalf("connection still open, read a byte")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.t.Fatalf("connection neither answered nor closed within 5s")
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// produceSync produces records and fails the test on any error.
func produceSync(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(ctxT(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeN reads n records from the client, failing on errors or a timeout.
func consumeN(t testing.TB, cl *kgo.Client, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx := ctxT(t, timeout)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the timeout", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	return out
}

// testLogger shows the broker's debug log when STRATATEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("STRATATEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testClientLogger logs a franz-go client's group decisions when STRATATEST_LOG is set.
func testClientLogger(name string) kgo.Logger {
	if os.Getenv("STRATATEST_LOG") == "" {
		return nil
	}
	return kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return name + " " })
}
