package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/broker/group"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/metadata"
	plog "github.com/stratalog/strata/partition"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("broker: server closed")

// Options are the parts of a Server that its caller builds (cmd/strata is
// the composition root: internal/wire opens the store and the tier).
type Options struct {
	Logger *slog.Logger
	// Registerer receives the broker's metrics (nil: none).
	Registerer prometheus.Registerer
	// Meta is the node's metadata store, which the tier shares; the caller
	// closes it after Shutdown. Nil: the broker opens <log dir>/meta.db and
	// closes it itself.
	Meta *metadata.Store
	// Tier is the remote tier; nil runs without one (retention is then local
	// only).
	Tier Tier
	// Closers run when the broker stops, after it stopped serving and before
	// its logs close: the tier's, so no upload reads a closed log.
	Closers []func() error
}

// Server is one Strata broker.
type Server struct {
	cfg     *config.Broker
	log     *slog.Logger
	meta    *metadata.Store
	topics  *registry
	groups  *group.Coordinator
	offsets *offsetLog // __consumer_offsets: the coordinator's store
	fetches *fetchSessions
	metrics *Metrics
	tier    Tier
	closers []func() error // Options.Closers
	ownMeta bool           // the broker opened meta and closes it
	pids    producerIDs
	limits  connLimits
	reqMem  *reqMem // queued.max.request.bytes
	quotas  *clientQuotas
	// quotaHooks observe connection muting in tests (quota.go); nil otherwise.
	quotaHooks atomic.Pointer[quotaHooks]

	advHost string

	ctx    context.Context // cancelled at Shutdown: ends long polls and group waits
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		listeners map[net.Listener]struct{}
		conns     map[net.Conn]struct{}
		perIP     map[netip.Addr]int64 // open connections by remote address
		advPort   int32
		closed    bool
	}
	wg sync.WaitGroup // connection and background goroutines

	// cl is this broker's membership of a cluster (cluster.go); nil on one node.
	cl          *cluster.Node
	fetchers    *fetchers            // replica fetchers (fetcher.go); nil on one node
	reconcileMu sync.Mutex           // one reconcile at a time
	hwStart     map[cluster.TP]int64 // the high-watermark checkpoint read at start
	leadMu      sync.Mutex
	leadCh      chan struct{} // leadWake's channel

	deleteKick chan struct{} // wakes the deleter (deletion.go)
	delErrMu   sync.Mutex
	delErrs    map[string]string // last cleanup error by topic id (hex)

	dynCfg dynamicConfigs // dynamic broker configs (brokerconfigs.go)
}

// New opens the broker's metadata, its logs and its remote tier. Call Serve to
// accept clients and Shutdown to stop.
func New(cfg *config.Broker, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The keys set, as Kafka logs its config at start-up; sensitive ones
	// show as [hidden] (config.Broker.LogValue).
	logger.Info("config", "set", cfg)
	host, port, err := cfg.Advertised()
	if err != nil {
		return nil, err
	}
	cfg.WarnNoEffect(logger)
	limits, err := newConnLimits(cfg)
	if err != nil {
		return nil, err
	}
	meta, ownMeta := opts.Meta, opts.Meta == nil
	if ownMeta {
		if err := os.MkdirAll(cfg.LogDir(), 0o755); err != nil {
			return nil, fmt.Errorf("broker: cannot create log dir %q: %w", cfg.LogDir(), err)
		}
		if meta, err = metadata.Open(filepath.Join(cfg.LogDir(), "meta.db")); err != nil {
			return nil, err
		}
	}
	s := &Server{
		ownMeta: ownMeta,
		closers: opts.Closers,
		cfg:     cfg,
		log:     logger,
		meta:    meta,
		metrics: NewMetrics(opts.Registerer),
		tier:    opts.Tier,
		advHost: host,
		fetches: newFetchSessions(1000),
		limits:  limits,

		deleteKick: make(chan struct{}, 1),
	}
	s.reqMem = newReqMem(cfg.QueuedMaxRequestBytes, s.metrics)
	s.quotas = newClientQuotas(cfg.QuotaWindowNum, cfg.QuotaWindowSizeSeconds)
	s.pids.meta = meta
	s.mu.advPort = port
	s.mu.listeners = map[net.Listener]struct{}{}
	s.mu.conns = map[net.Conn]struct{}{}
	s.mu.perIP = map[netip.Addr]int64{}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*Server, error) {
		s.closeAll()
		return nil, err
	}

	var remote plog.Remote // a nil Tier must stay a nil interface
	if s.tier != nil {
		remote = s.tier
	}
	s.topics, err = openRegistry(cfg, meta, remote, logger)
	if err != nil {
		return fail(err)
	}
	if err := s.loadDynamicConfigs(); err != nil {
		return fail(err)
	}
	// The tier keeps a manifest of each topic in the bucket (for recover).
	if mw, ok := s.tier.(interface{ TopicChanged(topic string) }); ok {
		s.topics.changed = mw.TopicChanged
	}
	s.offsets = newOffsetLog(s.topics, int32(cfg.OffsetsTopicNumPartitions), cfg.OffsetsTopicSegmentBytes, logger.With("component", "offsets"))
	restored, err := s.offsets.open()
	if err != nil {
		return fail(err)
	}
	if err := s.offsets.migrateFromMeta(meta); err != nil {
		return fail(err)
	}
	s.groups = group.New(group.Config{
		MinSessionTimeout:             ms(cfg.GroupMinSessionTimeoutMs),
		MaxSessionTimeout:             ms(cfg.GroupMaxSessionTimeoutMs),
		InitialRebalanceDelay:         ms(cfg.GroupInitialRebalanceDelayMs),
		OffsetsRetention:              time.Duration(cfg.OffsetsRetentionMinutes) * time.Minute,
		OffsetsRetentionCheckInterval: 10 * time.Minute,
	}, s.offsets, s.topics, logger.With("component", "groups"))
	for name, v := range restored {
		s.groups.Restore(name, v)
	}

	if !cfg.ClusterMode() { // a cluster's quotas come from etcd (reconcile)
		if err := s.loadQuotas(); err != nil {
			return fail(err)
		}
	}
	if cfg.ClusterMode() {
		if err := s.startCluster(); err != nil {
			s.cancel()
			s.wg.Wait()
			return fail(err)
		}
	}
	s.wg.Add(2)
	go s.housekeeping()
	go s.deleter()
	s.startCleaner()
	return s, nil
}

// closeAll closes the logs, the tier and the metadata, in that order.
func (s *Server) closeAll() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if s.groups != nil {
		s.groups.Close()
	}
	if s.cl != nil {
		keep(s.cl.Close())
	}
	for _, c := range s.closers {
		keep(c())
	}
	if s.topics != nil {
		keep(s.topics.close())
	}
	if s.ownMeta {
		keep(s.meta.Close())
	}
	return first
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// Config returns the broker's configuration.
func (s *Server) Config() *config.Broker { return s.cfg }

// ListenAndServe listens on the configured listener and serves.
func (s *Server) ListenAndServe() error {
	addr, err := s.cfg.ListenAddress()
	if err != nil {
		return err
	}
	l, err := s.listenConfig().Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("broker: cannot listen on %s: %w", addr, err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown. If the advertised port is 0, the
// port l is bound to is advertised.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.mu.advPort == 0 {
		if ta, ok := l.Addr().(*net.TCPAddr); ok {
			s.mu.advPort = int32(ta.Port)
		}
	}
	s.mu.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.log.Info("serving", "addr", l.Addr().String())

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.mu.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.mu.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		ip := remoteIP(nc)
		if over := s.admitLocked(nc, ip); over != "" {
			s.mu.Unlock()
			s.metrics.connsRefused.WithLabelValues(over).Inc() // before the close the client sees
			nc.Close()
			s.log.Debug("connection refused", "remote", nc.RemoteAddr().String(), "limit", over)
			continue
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc, ip)
	}
}

// Addr is the advertised host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return net.JoinHostPort(s.advHost, fmt.Sprint(s.mu.advPort))
}

func (s *Server) advertised() (string, int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advHost, s.mu.advPort
}

// Shutdown stops accepting, closes every connection, waits for the goroutines
// (bounded by ctx) and closes the logs and metadata cleanly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.mu.closed = true
	s.mu.Unlock()
	// In a cluster, leaderships move away while this broker still serves.
	s.stopCluster(ctx)
	s.mu.Lock()
	for l := range s.mu.listeners {
		l.Close()
	}
	for c := range s.mu.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := s.closeAll(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Close is Shutdown without waiting.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// requestHeader is a decoded request header.
type requestHeader struct {
	key      int16
	version  int16
	corrID   int32
	clientID string
}

// errFrame is a request the connection cannot continue after.
var errFrame = errors.New("broker: bad request frame")

// parseRequest decodes one request frame (without its 4-byte size). It never
// panics; on error the connection is closed and nothing has been applied.
func parseRequest(frame []byte) (hdr requestHeader, req kmsg.Request, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errFrame, r)
		}
	}()
	if len(frame) < 10 {
		return hdr, nil, fmt.Errorf("%w: %d bytes is shorter than a request header", errFrame, len(frame))
	}
	hdr.key = int16(binary.BigEndian.Uint16(frame[0:]))
	hdr.version = int16(binary.BigEndian.Uint16(frame[2:]))
	hdr.corrID = int32(binary.BigEndian.Uint32(frame[4:]))
	n := int16(binary.BigEndian.Uint16(frame[8:]))
	body := frame[10:]
	if n > 0 {
		if int(n) > len(body) {
			return hdr, nil, fmt.Errorf("%w: client id runs past the frame", errFrame)
		}
		hdr.clientID = string(body[:n])
		body = body[n:]
	}
	req = kmsg.RequestForKey(hdr.key)
	if req == nil {
		return hdr, nil, fmt.Errorf("%w: unknown api key %d", errFrame, hdr.key)
	}
	if !versionServed(hdr.key, hdr.version) {
		return hdr, req, errUnsupportedVersion
	}
	req.SetVersion(hdr.version)
	if req.IsFlexible() {
		body, err = skipTags(body)
		if err != nil {
			return hdr, nil, err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return hdr, nil, fmt.Errorf("%w: %s v%d: %v", errFrame, kmsg.NameForKey(hdr.key), hdr.version, err)
	}
	return hdr, req, nil
}

var errUnsupportedVersion = errors.New("broker: unsupported version")

// skipTags skips a tagged-field section of a flexible request header.
func skipTags(b []byte) ([]byte, error) {
	num, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad tagged fields", errFrame)
	}
	b = b[n:]
	for i := uint64(0); i < num; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, fmt.Errorf("%w: bad tag", errFrame)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < size {
			return nil, fmt.Errorf("%w: bad tag size", errFrame)
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// conn is one client connection. Requests are handled one at a time, in order,
// as Kafka does: a long poll or a JoinGroup holds the requests behind it.
type conn struct {
	s   *Server
	nc  net.Conn
	br  *bufio.Reader
	buf []byte   // reused response buffer
	q   reqQuota // the request being handled, for client quotas (quota.go)
}

func (s *Server) serveConn(nc net.Conn, ip netip.Addr) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.forgetLocked(nc, ip)
		s.mu.Unlock()
		nc.Close()
	}()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	s.setSocketBuffers(nc)
	c := &conn{s: s, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	s.metrics.connections.Inc()
	defer s.metrics.connections.Dec()
	for {
		err := c.serveOne()
		if err == nil {
			continue
		}
		if errors.Is(err, errIdle) {
			s.metrics.idleClosed.Inc()
			s.log.Debug("closing idle connection", "remote", nc.RemoteAddr().String(), "connections.max.idle.ms", s.cfg.ConnectionsMaxIdleMs)
			return
		}
		if errors.Is(err, errAcksZeroFailed) { // Kafka's behaviour, not the client's fault
			s.log.Info("closing connection", "remote", nc.RemoteAddr().String(), "err", err)
			return
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) && s.ctx.Err() == nil {
			s.log.Warn("closing connection", "remote", nc.RemoteAddr().String(), "err", err)
		}
		return
	}
}

// errIdle ends a connection that sent no request for connections.max.idle.ms.
var errIdle = errors.New("broker: idle connection")

// frameTimeout bounds the time a frame takes to arrive, not counting the time
// its connection waited for request memory: a stalled sender cannot hold its
// goroutine, or its share of queued.max.request.bytes, forever.
const frameTimeout = 2 * time.Minute

func (c *conn) serveOne() error {
	if idle := c.s.cfg.ConnectionsMaxIdleMs; idle > 0 {
		c.nc.SetReadDeadline(time.Now().Add(ms(idle)))
	} else {
		c.nc.SetReadDeadline(time.Time{})
	}
	var sz [4]byte
	if n, err := io.ReadFull(c.br, sz[:]); err != nil {
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			return errIdle
		}
		return err
	}
	size := int32(binary.BigEndian.Uint32(sz[:]))
	if size < 0 || int64(size) > c.s.cfg.SocketRequestMaxBytes {
		c.s.metrics.badFrames.Inc()
		return fmt.Errorf("%w: frame of %d bytes (socket.request.max.bytes is %d)", errFrame, size, c.s.cfg.SocketRequestMaxBytes)
	}
	fm := &frameMem{size: int64(size)}
	defer c.s.reqMem.release(fm) // once the request has been handled
	frame, err := c.readFrame(fm)
	if err != nil {
		return err
	}
	c.nc.SetReadDeadline(time.Time{})

	hdr, req, err := parseRequest(frame)
	if errors.Is(err, errUnsupportedVersion) && hdr.key == apiKeyApiVersions {
		// KIP-511: answer at v0 with our range so the client can retry.
		resp := c.s.apiVersionsResponse(0)
		resp.ErrorCode = 35 // UNSUPPORTED_VERSION
		return c.writeResponse(hdr, resp)
	}
	if err != nil {
		c.s.metrics.badFrames.Inc()
		return fmt.Errorf("%s (key %d v%d from %q): %w", kmsg.NameForKey(hdr.key), hdr.key, hdr.version, hdr.clientID, err)
	}
	start := time.Now()
	c.q = reqQuota{start: start, clientID: hdr.clientID, size: int64(size), key: hdr.key}
	if h := c.s.quotaHooks.Load(); h != nil {
		h.read(c, hdr.key)
	}
	resp, err := c.s.handle(c, hdr, req)
	if err != nil {
		return err
	}
	c.s.metrics.observeRequest(hdr.key, time.Since(start))
	throttle, delay := c.s.finishQuota(c, resp)
	if throttle > 0 {
		c.s.reqMem.release(fm) // handled: a throttled connection holds no request memory while it waits
	}
	if resp != nil { // nil: acks=0 produce, or a response written by the handler itself
		if delay {
			c.s.pause(throttle)
			throttle = 0
		}
		if err := c.writeResponse(hdr, resp); err != nil {
			return err
		}
	}
	if throttle > 0 {
		c.mute(throttle)
	}
	return nil
}

// readFrame reads a frame of fm.size bytes into a buffer that grows as the
// bytes arrive, charging each step to queued.max.request.bytes and waiting,
// without reading, while it does not fit (reqMem says how and why that cannot
// deadlock).
func (c *conn) readFrame(fm *frameMem) ([]byte, error) {
	size := fm.size
	if size == 0 {
		return nil, nil
	}
	shift := 0
	for size>>shift > firstFrameChunk {
		shift++
	}
	var buf []byte
	filled := 0
	deadline := time.Now().Add(frameTimeout)
	for int64(filled) < size {
		if filled == len(buf) {
			next := size >> shift
			shift--
			start := time.Now()
			if err := c.s.reqMem.grow(c.s.ctx, fm, next); err != nil {
				return nil, err
			}
			deadline = deadline.Add(time.Since(start))
			nb := make([]byte, next)
			copy(nb, buf[:filled])
			buf = nb
		}
		c.nc.SetReadDeadline(deadline)
		n, err := c.br.Read(buf[filled:])
		filled += n
		if err != nil && int64(filled) < size {
			return nil, fmt.Errorf("%w: truncated frame (%d of %d bytes): %v", errFrame, filled, size, err)
		}
	}
	return buf, nil
}

// writeResponse frames and writes resp at the version its handler set (the
// request's, except for the KIP-511 ApiVersions fallback at v0).
func (c *conn) writeResponse(hdr requestHeader, resp kmsg.Response) error {
	b := c.buf[:0]
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(hdr.corrID))
	if resp.IsFlexible() && hdr.key != apiKeyApiVersions {
		b = append(b, 0) // empty tagged fields in the response header
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if cap(b) <= 1<<20 {
		c.buf = b
	}
	c.nc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	_, err := c.nc.Write(b)
	c.nc.SetWriteDeadline(time.Time{})
	return err
}
