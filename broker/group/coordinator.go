package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/metadata"
)

// Config holds the coordinator's settings. A zero field takes Kafka's default,
// except InitialRebalanceDelay, for which zero means no delay.
type Config struct {
	MinSessionTimeout, MaxSessionTimeout time.Duration // group.min/max.session.timeout.ms
	InitialRebalanceDelay                time.Duration // group.initial.rebalance.delay.ms
	OffsetsRetention                     time.Duration // offsets.retention.minutes
	OffsetsRetentionCheckInterval        time.Duration // offsets.retention.check.interval.ms
}

// Kafka's defaults.
const (
	DefaultMinSessionTimeout             = 6 * time.Second
	DefaultMaxSessionTimeout             = 30 * time.Minute
	DefaultInitialRebalanceDelay         = 3 * time.Second
	DefaultOffsetsRetention              = 7 * 24 * time.Hour
	DefaultOffsetsRetentionCheckInterval = 10 * time.Minute

	// maxMetadataBytes is offset.metadata.max.bytes: longer commit metadata
	// is refused with OFFSET_METADATA_TOO_LARGE.
	maxMetadataBytes = 4096
)

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		MinSessionTimeout:             DefaultMinSessionTimeout,
		MaxSessionTimeout:             DefaultMaxSessionTimeout,
		InitialRebalanceDelay:         DefaultInitialRebalanceDelay,
		OffsetsRetention:              DefaultOffsetsRetention,
		OffsetsRetentionCheckInterval: DefaultOffsetsRetentionCheckInterval,
	}
}

// Validate reports a configuration the coordinator cannot run with.
func (c Config) Validate() error {
	if c.MinSessionTimeout < 0 || c.MaxSessionTimeout < 0 || c.InitialRebalanceDelay < 0 ||
		c.OffsetsRetention < 0 || c.OffsetsRetentionCheckInterval < 0 {
		return errors.New("group: negative duration in config")
	}
	if c.MinSessionTimeout > 0 && c.MaxSessionTimeout > 0 && c.MinSessionTimeout > c.MaxSessionTimeout {
		return errors.New("group: min session timeout above max session timeout")
	}
	return nil
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = d.MinSessionTimeout
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = d.MaxSessionTimeout
	}
	if c.InitialRebalanceDelay < 0 {
		c.InitialRebalanceDelay = 0
	}
	if c.OffsetsRetention <= 0 {
		c.OffsetsRetention = d.OffsetsRetention
	}
	if c.OffsetsRetentionCheckInterval <= 0 {
		c.OffsetsRetentionCheckInterval = d.OffsetsRetentionCheckInterval
	}
	return c
}

// OffsetStore persists committed offsets: the broker's __consumer_offsets
// log, which also implements GroupStore. *metadata.Store implements it too.
type OffsetStore interface {
	CommitOffsets(group string, commits []metadata.OffsetCommit) error
	GroupOffsets(group string) ([]metadata.OffsetCommit, error)
	DeleteGroupOffsets(group string) error
	DeleteOffsets(group string, tps []metadata.TopicPartition) error
	OffsetGroups() ([]string, error)
	// ExpireOffsets deletes commits older than beforeMs of groups for which keep returns false.
	ExpireOffsets(beforeMs int64, keep func(group string) bool) (int, error)
}

var _ OffsetStore = (*metadata.Store)(nil)

// Topics answers questions about the broker's topics.
type Topics interface {
	PartitionExists(topic string, partition int32) bool
	TopicName(id [16]byte) (string, bool)
	TopicID(name string) ([16]byte, bool)
}

// Coordinator is the group coordinator of one broker.
type Coordinator struct {
	cfg    Config
	store  OffsetStore
	topics Topics
	log    *slog.Logger

	closed atomic.Bool    // set by Close, under timers; requests are refused after it
	done   chan struct{}  // closed by Close: wakes blocked JoinGroup/SyncGroup calls
	wg     sync.WaitGroup // armed timers, running timer callbacks, the expiry loop

	// timers orders arming a timer (wg.Add) before Close's wg.Wait: once
	// Close has set closed under it, nothing is armed. A leaf lock.
	timers sync.Mutex

	mu struct {
		sync.Mutex
		groups map[string]*group
	}
}

// New returns a running coordinator; Close stops it.
func New(cfg Config, store OffsetStore, topics Topics, logger *slog.Logger) *Coordinator {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Coordinator{
		cfg:    cfg.withDefaults(),
		store:  store,
		topics: topics,
		log:    logger,
		done:   make(chan struct{}),
	}
	c.mu.groups = make(map[string]*group)
	c.wg.Add(1)
	go c.expiryLoop()
	return c
}

// Versions lists the API keys served, each with its min and max version.
func Versions() map[int16][2]int16 {
	return map[int16][2]int16{
		int16(kmsg.OffsetCommit):   {0, 10},
		int16(kmsg.OffsetFetch):    {0, 10},
		int16(kmsg.JoinGroup):      {0, 9},
		int16(kmsg.Heartbeat):      {0, 4},
		int16(kmsg.LeaveGroup):     {0, 5},
		int16(kmsg.SyncGroup):      {0, 5},
		int16(kmsg.DescribeGroups): {0, 6},
		int16(kmsg.ListGroups):     {0, 5},
		int16(kmsg.DeleteGroups):   {0, 3},
		int16(kmsg.OffsetDelete):   {0, 0},
	}
}

type clientKey struct{}

type clientInfo struct{ id, host string }

// WithClient returns ctx carrying the client id (from the request header) and
// the client's address. JoinGroup uses them for member ids
// ("<clientId>-<uuid>") and DescribeGroups reports them.
func WithClient(ctx context.Context, clientID, clientHost string) context.Context {
	return context.WithValue(ctx, clientKey{}, clientInfo{clientID, clientHost})
}

func clientFrom(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(clientKey{}).(clientInfo)
	return ci
}

// Handle serves one group API request and returns its response at the
// request's version. JoinGroup and SyncGroup block until the rebalance step
// they wait for completes, ctx is done or the coordinator closes. ok is false
// for API keys this package does not serve. The broker should pass a ctx
// made with WithClient: member ids and DescribeGroups use the client id and
// address. The request's version is trusted: the broker checks it against
// Versions first.
func (c *Coordinator) Handle(ctx context.Context, req kmsg.Request) (resp kmsg.Response, ok bool) {
	switch req := req.(type) {
	case *kmsg.OffsetCommitRequest:
		return c.handleOffsetCommit(req), true
	case *kmsg.OffsetFetchRequest:
		return c.handleOffsetFetch(req), true
	case *kmsg.JoinGroupRequest:
		return c.handleJoinGroup(ctx, req), true
	case *kmsg.HeartbeatRequest:
		return c.handleHeartbeat(req), true
	case *kmsg.LeaveGroupRequest:
		return c.handleLeaveGroup(req), true
	case *kmsg.SyncGroupRequest:
		return c.handleSyncGroup(ctx, req), true
	case *kmsg.DescribeGroupsRequest:
		return c.handleDescribeGroups(req), true
	case *kmsg.ListGroupsRequest:
		return c.handleListGroups(req), true
	case *kmsg.DeleteGroupsRequest:
		return c.handleDeleteGroups(req), true
	case *kmsg.OffsetDeleteRequest:
		return c.handleOffsetDelete(req), true
	}
	return nil, false
}

// Close stops every timer and the expiry loop, answers blocked JoinGroup and
// SyncGroup calls with COORDINATOR_NOT_AVAILABLE and waits until no goroutine
// of the coordinator is left. Later requests get COORDINATOR_NOT_AVAILABLE.
func (c *Coordinator) Close() {
	c.timers.Lock()
	already := c.closed.Swap(true)
	c.timers.Unlock()
	if already {
		c.wg.Wait()
		return
	}
	close(c.done)
	c.mu.Lock()
	groups := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.stopTimers()
		g.mu.Unlock()
	}
	c.wg.Wait()
}

// schedule arms f to run after d, replacing (and stopping) *t. Callers hold
// the lock of the group that owns *t; schedule takes c.timers. After Close
// it arms nothing.
func (c *Coordinator) schedule(t **time.Timer, d time.Duration, f func()) {
	c.cancel(t)
	c.timers.Lock()
	defer c.timers.Unlock()
	if c.closed.Load() {
		return
	}
	c.wg.Add(1)
	*t = time.AfterFunc(d, func() {
		defer c.wg.Done()
		f()
	})
}

// cancel stops *t. Callers hold the lock of the group that owns *t.
func (c *Coordinator) cancel(t **time.Timer) {
	if *t != nil && (*t).Stop() {
		c.wg.Done() // the callback will never run
	}
	*t = nil
}

// lockGroup returns the named group with its mu held, creating it if create is
// set. It returns a nil group (and no error) if the group does not exist, and
// COORDINATOR_NOT_AVAILABLE once the coordinator is closed. Callers hold no lock.
func (c *Coordinator) lockGroup(name string, create bool) (*group, *kerr.Error) {
	for {
		if c.closed.Load() {
			return nil, kerr.CoordinatorNotAvailable
		}
		c.mu.Lock()
		g := c.mu.groups[name]
		if g == nil {
			if !create {
				c.mu.Unlock()
				return nil, nil
			}
			g = newGroup(c, name)
			c.mu.groups[name] = g
		}
		c.mu.Unlock()
		g.mu.Lock()
		if !g.mu.dead {
			return g, nil
		}
		g.mu.Unlock() // dropped meanwhile: look again
	}
}

// dropIfUnused removes g from memory if it never got past creation (a
// JoinGroup that failed validation on a group it created). Callers hold no lock.
func (c *Coordinator) dropIfUnused(g *group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.mu.groups[g.name] == g && g.unusedLocked() {
		g.mu.dead = true
		delete(c.mu.groups, g.name)
	}
}

// snapshotGroups returns the groups in memory. Callers hold no lock.
func (c *Coordinator) snapshotGroups() []*group {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].name < gs[j].name })
	return gs
}

func (c *Coordinator) expiryLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.OffsetsRetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			c.expireOffsets(now)
		}
	}
}

// expireOffsets deletes offsets older than offsets.retention of groups that
// are Empty, then forgets Empty groups left without offsets.
//
// Kafka 2.1+ (KIP-211) expires an Empty group's offsets once the group has
// been Empty for the retention period; a simple (groupless) commit expires
// by its commit time. The store can only compare commit times, so here an
// offset of a consumer group expires when both its commit and the group's
// move to Empty are older than the retention; a group with members keeps
// every offset (Kafka would expire offsets of topics a Stable group no
// longer subscribes to; we do not). Callers hold no lock.
func (c *Coordinator) expireOffsets(now time.Time) {
	retention := c.cfg.OffsetsRetention
	keep := make(map[string]bool)
	for _, g := range c.snapshotGroups() {
		g.mu.Lock()
		if !g.mu.dead && (g.mu.state != stateEmpty || len(g.mu.pending) > 0 ||
			(g.mu.protocolType != "" && now.Sub(g.mu.stateSince) < retention)) {
			keep[g.name] = true
		}
		g.mu.Unlock()
	}
	beforeMs := now.Add(-retention).UnixMilli()
	n, err := c.store.ExpireOffsets(beforeMs, func(group string) bool { return keep[group] })
	if err != nil {
		c.log.Warn("group: cannot expire offsets", "err", err)
		return
	}
	if n > 0 {
		c.log.Info("group: expired offsets", "count", n)
	}
	remaining, err := c.store.OffsetGroups()
	if err != nil {
		c.log.Warn("group: cannot list groups with offsets", "err", err)
		return
	}
	has := make(map[string]bool, len(remaining))
	for _, name := range remaining {
		has[name] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, g := range c.mu.groups {
		g.mu.Lock()
		if g.mu.state == stateEmpty && len(g.mu.members) == 0 && len(g.mu.pending) == 0 && !has[name] {
			g.mu.dead = true
			g.stopTimers()
			delete(c.mu.groups, name)
			// Dead: its metadata record gets a tombstone, as in Kafka.
			if gs, ok := c.store.(GroupStore); ok {
				if err := gs.StoreGroup(name, nil); err != nil {
					c.log.Warn("group: cannot delete group metadata", "group", name, "err", err)
				}
			}
		}
		g.mu.Unlock()
	}
}

// groupHasOffsets reports whether the store holds commits of group: a group
// with offsets but no state in memory exists, as an Empty group.
func (c *Coordinator) groupHasOffsets(group string) (bool, error) {
	offs, err := c.store.GroupOffsets(group)
	return len(offs) > 0, err
}

// newMemberID returns "<prefix>-<uuid v4>", as Kafka names members.
func newMemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return prefix + "-" + string(s[:])
}
