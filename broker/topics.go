package broker

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	plog "github.com/stratalog/strata/partition"
)

// topic is a topic in memory. Its partition list and configuration are replaced
// whole (copy on write), so readers load them without the registry lock.
type topic struct {
	name       string
	id         [16]byte
	partitions atomic.Pointer[[]*partition]
	cfg        atomic.Pointer[topicConfig]
	// admin serialises the changes of this topic (configs, partition count,
	// deletion) and is held across their disk work; produce and fetch never
	// take it.
	admin sync.Mutex
}

type topicConfig struct {
	overrides map[string]string
	eff       config.Topic
}

func (t *topic) parts() []*partition { return *t.partitions.Load() }

func (t *topic) partition(i int32) *partition {
	ps := t.parts()
	if i < 0 || int(i) >= len(ps) {
		return nil
	}
	return ps[i]
}

// partition is one partition: its whole log (package partition: local and
// remote) and the fetches parked on it.
type partition struct {
	topic *topic
	index int32
	log   *plog.Log
	// rep is the partition's replication state in a cluster (replica.go);
	// nil on a single node.
	rep atomic.Pointer[replica]

	waitMu  sync.Mutex
	waiters map[*waiter]struct{}
}

// waiter is a parked fetch; an append to any partition it watches wakes it.
type waiter struct{ ch chan struct{} }

func newWaiter() *waiter { return &waiter{ch: make(chan struct{}, 1)} }

func (p *partition) watch(w *waiter) {
	p.waitMu.Lock()
	if p.waiters == nil {
		p.waiters = map[*waiter]struct{}{}
	}
	p.waiters[w] = struct{}{}
	p.waitMu.Unlock()
}

func (p *partition) unwatch(w *waiter) {
	p.waitMu.Lock()
	delete(p.waiters, w)
	p.waitMu.Unlock()
}

// notify wakes every fetch parked on p.
func (p *partition) notify() {
	p.waitMu.Lock()
	for w := range p.waiters {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}

// registry holds the topics. Creation and deletion take mu; lookups take it shared.
type registry struct {
	cfg  *config.Broker
	meta *metadata.Store
	// remote is the tier partitions read below their local logs; nil: none.
	remote plog.Remote
	// opened, when set, is called after each partition log a creation opens
	// (tests: to act while a creation is under way).
	opened atomic.Pointer[func(topic, dir string)]
	log    *slog.Logger
	dir    string
	// changed, when set, is told the name of a topic whose durable
	// description (ID, partitions, configs) was just created or changed: the
	// tier writes the topic's manifest in the background.
	changed func(topic string)
	// newRep, in a cluster, gives every partition it opens its replication
	// state before the partition is published, so no request ever sees a
	// partition of a cluster without one (it is not led until etcd says so).
	newRep func(p *partition)

	mu struct {
		sync.RWMutex
		byName map[string]*topic
		byID   map[[16]byte]*topic
		// deleting reserves the names of topics whose deletion is under way
		// (deletion.go), creating those of topics being created.
		deleting map[string]bool
		creating map[string]bool
	}
}

const deleteSuffix = "-delete"

func openRegistry(cfg *config.Broker, meta *metadata.Store, remote plog.Remote, logger *slog.Logger) (*registry, error) {
	r := &registry{cfg: cfg, meta: meta, remote: remote, log: logger, dir: cfg.LogDir()}
	r.mu.byName = map[string]*topic{}
	r.mu.byID = map[[16]byte]*topic{}
	r.mu.deleting = map[string]bool{}
	r.mu.creating = map[string]bool{}
	// Finish the deletions a crash interrupted before any topic is opened.
	if err := r.finishDeletionsAtStart(); err != nil {
		return nil, fmt.Errorf("broker: log dir %q: %w", r.dir, err)
	}
	topics, err := meta.Topics()
	if err != nil {
		return nil, err
	}
	loaded, err := r.loadAll(topics)
	if err != nil {
		return nil, err
	}
	for _, t := range loaded {
		r.mu.byName[t.name] = t
		r.mu.byID[t.id] = t
	}
	return r, nil
}

// loadAll opens every partition log of topics at start-up, with
// num.recovery.threads.per.data.dir of them opening at once: after an unclean
// shutdown each open scans and recovers segments, as Kafka's recovery
// threads do. On an error every log opened is closed again.
func (r *registry) loadAll(topics []metadata.Topic) ([]*topic, error) {
	var out []*topic
	var jobs []partitionJob
	for _, mt := range topics {
		eff, err := r.resolve(mt.Name, mt.Configs)
		if err != nil {
			return nil, fmt.Errorf("broker: topic %q: %w", mt.Name, err)
		}
		t := &topic{name: mt.Name, id: mt.ID}
		t.cfg.Store(&topicConfig{overrides: mt.Configs, eff: eff})
		lc := logConfig(eff)
		for i := int32(0); i < mt.Partitions; i++ {
			jobs = append(jobs, partitionJob{t: t, index: i, dir: filepath.Join(r.dir, t.name+"-"+strconv.Itoa(int(i))), cfg: lc})
		}
		out = append(out, t)
	}
	logs, err := openLogs(jobs, int(r.cfg.NumRecoveryThreadsPerDataDir), localstore.Open, r.log)
	if err != nil {
		return nil, err
	}
	parts := map[*topic][]*partition{}
	for i, j := range jobs {
		p, err := r.newPartition(j.t, j.index, logs[i])
		if err != nil {
			for _, l := range logs {
				l.Close()
			}
			return nil, err
		}
		parts[j.t] = append(parts[j.t], p)
	}
	for _, t := range out {
		ps := parts[t]
		t.partitions.Store(&ps)
	}
	return out, nil
}

// partitionJob is a partition log to open at start-up.
type partitionJob struct {
	t     *topic
	index int32
	dir   string
	cfg   localstore.Config
}

type openLogFunc func(dir string, cfg localstore.Config, logger *slog.Logger) (*localstore.Log, error)

// openLogs opens the logs of jobs, at most workers at once, and returns them
// in job order. On an error it closes what it opened and returns the error of
// the first job that failed.
func openLogs(jobs []partitionJob, workers int, open openLogFunc, logger *slog.Logger) ([]*localstore.Log, error) {
	logs := make([]*localstore.Log, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(workers, len(jobs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := jobs[i]
				l, err := open(j.dir, j.cfg, logger.With("topic", j.t.name, "partition", j.index))
				if err != nil {
					err = fmt.Errorf("broker: cannot open partition %s-%d: %w", j.t.name, j.index, err)
				}
				logs[i], errs[i] = l, err
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for _, l := range logs {
				if l != nil {
					l.Close()
				}
			}
			return nil, err
		}
	}
	return logs, nil
}

// load opens a topic's logs. fresh: the topic was just created, so any
// directory of its name is a stale one (addPartitions).
func (r *registry) load(mt metadata.Topic, fresh bool) (*topic, error) {
	eff, err := r.resolve(mt.Name, mt.Configs)
	if err != nil {
		return nil, fmt.Errorf("broker: topic %q: %w", mt.Name, err)
	}
	t := &topic{name: mt.Name, id: mt.ID}
	t.cfg.Store(&topicConfig{overrides: mt.Configs, eff: eff})
	ps := make([]*partition, 0, mt.Partitions)
	t.partitions.Store(&ps)
	if err := r.addPartitions(t, mt.Partitions, fresh); err != nil {
		for _, p := range t.parts() {
			p.log.Close()
		}
		return nil, err
	}
	return t, nil
}

// addPartitions opens and publishes partitions len(t.parts()) .. n-1.
func (r *registry) addPartitions(t *topic, n int32, fresh bool) error {
	ps, err := r.openPartitions(t, n, fresh)
	if err != nil {
		return err
	}
	t.partitions.Store(&ps)
	return nil
}

// openPartitions opens the logs of partitions len(t.parts()) .. n-1,
// num.recovery.threads.per.data.dir at once, and returns the whole new
// partition list without publishing it. fresh: the partitions are new
// (CreateTopics, CreatePartitions), so a directory already there is left
// over from another topic of the same name (a crash of a version without
// durable deletion, or a hand copy): it is set aside, never adopted.
func (r *registry) openPartitions(t *topic, n int32, fresh bool) ([]*partition, error) {
	old := t.parts()
	lc := logConfig(t.cfg.Load().eff)
	var jobs []partitionJob
	for i := int32(len(old)); i < n; i++ {
		dir := filepath.Join(r.dir, t.name+"-"+strconv.Itoa(int(i)))
		if fresh {
			if _, err := os.Stat(dir); err == nil {
				stale := dir + ".stale-" + strconv.FormatInt(time.Now().UnixNano(), 36) + deleteSuffix
				r.log.Warn("a new partition's directory already exists; setting it aside", "dir", dir, "to", stale)
				if err := os.Rename(dir, stale); err != nil {
					return nil, fmt.Errorf("broker: cannot set aside stale directory %q: %w", dir, err)
				}
			}
		}
		jobs = append(jobs, partitionJob{t: t, index: i, dir: dir, cfg: lc})
	}
	open := localstore.Open
	if hook := r.opened.Load(); hook != nil {
		open = func(dir string, cfg localstore.Config, logger *slog.Logger) (*localstore.Log, error) {
			l, err := localstore.Open(dir, cfg, logger)
			if err == nil {
				(*hook)(t.name, dir)
			}
			return l, err
		}
	}
	logs, err := openLogs(jobs, int(r.cfg.NumRecoveryThreadsPerDataDir), open, r.log)
	if err != nil {
		return nil, err
	}
	ps := append([]*partition(nil), old...)
	for i, j := range jobs {
		p, err := r.newPartition(t, j.index, logs[i])
		if err != nil {
			for _, l := range logs {
				l.Close()
			}
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// newPartition wraps an open local log in the partition's whole log, with
// the log start offset recorded in the metadata store (DeleteRecords,
// retention) as its floor.
func (r *registry) newPartition(t *topic, index int32, l *localstore.Log) (*partition, error) {
	pl := plog.New(t.name, t.id, index, l, r.remote, r.meta, r.partitionConfig(t.cfg.Load().eff), r.log.With("topic", t.name, "partition", index))
	start, ok, err := r.meta.LogStartOffset(t.name, index)
	if err != nil {
		return nil, fmt.Errorf("broker: partition %s-%d: log start offset: %w", t.name, index, err)
	}
	if ok {
		pl.RestoreLogStart(start)
	}
	p := &partition{topic: t, index: index, log: pl}
	if r.newRep != nil {
		r.newRep(p)
	}
	return p, nil
}

// resolve validates a topic's overrides and resolves its settings.
func (r *registry) resolve(_ string, overrides map[string]string) (config.Topic, error) {
	return r.cfg.Resolve(overrides)
}

// partitionConfig is what a partition's whole log needs of its topic's
// settings.
func (r *registry) partitionConfig(c config.Topic) plog.Config {
	// A compact-only topic keeps its records whatever their age or size, as
	// in Kafka: only the cleaner removes them (partition.Config.CompactOnly).
	return plog.Config{
		Tiered:      r.remote != nil && c.RemoteStorageEnable,
		RetentionMs: c.RetentionMs, RetentionBytes: c.RetentionBytes,
		LocalRetentionMs: c.LocalRetentionMs, LocalRetentionBytes: c.LocalRetentionBytes,
		CompactOnly: c.Compact() && !c.Delete(),
	}
}

func logConfig(c config.Topic) localstore.Config {
	return localstore.Config{
		SegmentBytes:       c.SegmentBytes,
		SegmentMs:          c.SegmentMs,
		SegmentJitterMs:    c.SegmentJitterMs,
		SegmentIndexBytes:  c.SegmentIndexBytes,
		IndexIntervalBytes: c.IndexIntervalBytes,
		FlushMessages:      c.FlushMessages,
		FlushMs:            c.FlushMs,
		LogAppendTime:      c.TimestampType == "LogAppendTime",
		FileDeleteDelayMs:  c.FileDeleteDelayMs,
	}
}

func (r *registry) get(name string) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.mu.byName[name]
}

func (r *registry) getByID(id [16]byte) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.mu.byID[id]
}

func (r *registry) all() []*topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ts := make([]*topic, 0, len(r.mu.byName))
	for _, t := range r.mu.byName {
		ts = append(ts, t)
	}
	return ts
}

// The group coordinator's view of topics (group.Topics).

func (r *registry) PartitionExists(name string, p int32) bool {
	t := r.get(name)
	return t != nil && t.partition(p) != nil
}

func (r *registry) TopicName(id [16]byte) (string, bool) {
	if t := r.getByID(id); t != nil {
		return t.name, true
	}
	return "", false
}

func (r *registry) TopicID(name string) ([16]byte, bool) {
	if t := r.get(name); t != nil {
		return t.id, true
	}
	return [16]byte{}, false
}

var (
	errTopicExists   = errors.New("topic already exists")
	errInvalidTopic  = errors.New("invalid topic name")
	errUnknownTopic  = errors.New("unknown topic")
	errInvalidConfig = errors.New("invalid config")
	errInvalidParts  = errors.New("invalid partitions")
)

// validTopicName applies Kafka's rules: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
func validTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", errInvalidTopic, name)
	}
	if len(name) > 249 {
		return fmt.Errorf("%w: %q is longer than 249 characters", errInvalidTopic, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q (allowed: ASCII letters, digits, '.', '_' and '-')", errInvalidTopic, name, c)
		}
	}
	return nil
}

// create makes a topic durable, then opens its logs. validateOnly checks only.
func (r *registry) create(name string, partitions int32, overrides map[string]string, validateOnly bool) (*topic, error) {
	var id [16]byte
	for id == ([16]byte{}) {
		rand.Read(id[:])
	}
	return r.createWithID(name, id, partitions, overrides, validateOnly)
}

// createWithID is create with the topic ID given (a cluster's topics get
// theirs in etcd, and every replica's copy carries it).
func (r *registry) createWithID(name string, id [16]byte, partitions int32, overrides map[string]string, validateOnly bool) (*topic, error) {
	if err := validTopicName(name); err != nil {
		return nil, err
	}
	if partitions <= 0 {
		return nil, fmt.Errorf("%w: number of partitions must be at least 1, got %d", errInvalidParts, partitions)
	}
	if partitions > 100000 {
		return nil, fmt.Errorf("%w: %d partitions is more than one broker should hold (at most 100000)", errInvalidParts, partitions)
	}
	if _, err := r.resolve(name, overrides); err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidConfig, err)
	}
	// The registry lock is held only to reserve the name and, at the end,
	// to publish the topic: the bbolt commit and the opening of every
	// partition log happen outside it, so produce and fetch on other topics
	// (which take its read side) never wait for a creation.
	r.mu.Lock()
	switch {
	case r.mu.byName[name] != nil, r.mu.creating[name]:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", errTopicExists, name)
	case r.mu.deleting[name]:
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %q is marked for deletion", errTopicExists, name)
	case validateOnly:
		r.mu.Unlock()
		return nil, nil
	}
	r.mu.creating[name] = true
	r.mu.Unlock()
	published := false
	defer func() {
		if !published {
			r.mu.Lock()
			delete(r.mu.creating, name)
			r.mu.Unlock()
		}
	}()

	mt := metadata.Topic{Name: name, ID: id, Partitions: partitions, Configs: overrides}
	if err := r.meta.CreateTopic(mt); err != nil {
		return nil, err
	}
	t, err := r.load(mt, true)
	if err != nil {
		if d, derr := r.meta.DeleteTopic(name); derr == nil {
			r.finishLocal(d) // the name is reserved: no topic of it can appear meanwhile
		}
		return nil, err
	}
	r.mu.Lock()
	r.mu.byName[name] = t
	r.mu.byID[id] = t
	delete(r.mu.creating, name)
	published = true
	r.mu.Unlock()
	r.log.Info("topic created", "topic", name, "partitions", partitions)
	r.notifyChanged(name)
	return t, nil
}

// member reports whether t is the registered topic of its name (not deleted
// meanwhile). Callers hold t.admin, which deletion takes too.
func (r *registry) member(t *topic) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.mu.byName[t.name] == t
}

// setConfig validates, persists and applies a topic's new overrides.
func (r *registry) setConfig(t *topic, overrides map[string]string, validateOnly bool) error {
	eff, err := r.resolve(t.name, overrides)
	if err != nil {
		return fmt.Errorf("%w: %v", errInvalidConfig, err)
	}
	if validateOnly {
		return nil
	}
	t.admin.Lock()
	defer t.admin.Unlock()
	if !r.member(t) {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	if err := r.meta.SetTopicConfigs(t.name, overrides); err != nil {
		return err
	}
	t.cfg.Store(&topicConfig{overrides: overrides, eff: eff})
	lc, pc := logConfig(eff), r.partitionConfig(eff)
	for _, p := range t.parts() {
		p.log.Local().SetConfig(lc)
		p.log.SetConfig(pc)
	}
	r.notifyChanged(t.name)
	return nil
}

// notifyChanged tells the tier a topic's description changed (never blocks).
func (r *registry) notifyChanged(name string) {
	if r.changed != nil {
		r.changed(name)
	}
}

// grow adds partitions up to n.
func (r *registry) grow(t *topic, n int32, validateOnly bool) error {
	t.admin.Lock()
	defer t.admin.Unlock()
	if !r.member(t) {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	cur := int32(len(t.parts()))
	if n <= cur {
		return fmt.Errorf("%w: topic %q has %d partitions; the count can only grow", errInvalidParts, t.name, cur)
	}
	if n > 100000 {
		return fmt.Errorf("%w: %d partitions is more than one broker should hold (at most 100000)", errInvalidParts, n)
	}
	if validateOnly {
		return nil
	}
	ps, err := r.openPartitions(t, n, true)
	if err != nil {
		return err
	}
	if err := r.meta.SetPartitionCount(t.name, n); err != nil {
		for _, p := range ps[cur:] {
			p.log.Close()
		}
		return err
	}
	t.partitions.Store(&ps)
	r.notifyChanged(t.name)
	return nil
}

func (r *registry) close() error {
	var first error
	for _, t := range r.all() {
		for _, p := range t.parts() {
			if err := p.log.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// TopicNames lists the topics, sorted.
func (s *Server) TopicNames() []string {
	var names []string
	for _, t := range s.topics.all() {
		names = append(names, t.name)
	}
	sort.Strings(names)
	return names
}
