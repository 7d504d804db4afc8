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
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
)

// topic is a topic in memory. Its partition list and configuration are replaced
// whole (copy on write), so readers load them without the registry lock.
type topic struct {
	name       string
	id         [16]byte
	partitions atomic.Pointer[[]*partition]
	cfg        atomic.Pointer[topicConfig]
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

// partition is one partition: its local log and the fetches parked on it.
type partition struct {
	topic *topic
	index int32
	log   *localstore.Log

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
	log  *slog.Logger
	dir  string

	mu struct {
		sync.RWMutex
		byName map[string]*topic
		byID   map[[16]byte]*topic
	}
}

const deleteSuffix = "-delete"

func openRegistry(cfg *config.Broker, meta *metadata.Store, logger *slog.Logger) (*registry, error) {
	r := &registry{cfg: cfg, meta: meta, log: logger, dir: cfg.LogDir()}
	r.mu.byName = map[string]*topic{}
	r.mu.byID = map[[16]byte]*topic{}
	// Finish deletions a crash interrupted.
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("broker: cannot read log dir %q: %w", r.dir, err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), deleteSuffix) {
			os.RemoveAll(filepath.Join(r.dir, e.Name()))
		}
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
		eff, err := r.cfg.Resolve(mt.Configs)
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
		parts[j.t] = append(parts[j.t], &partition{topic: j.t, index: j.index, log: logs[i]})
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

// load opens a topic's logs.
func (r *registry) load(mt metadata.Topic) (*topic, error) {
	eff, err := r.cfg.Resolve(mt.Configs)
	if err != nil {
		return nil, fmt.Errorf("broker: topic %q: %w", mt.Name, err)
	}
	t := &topic{name: mt.Name, id: mt.ID}
	t.cfg.Store(&topicConfig{overrides: mt.Configs, eff: eff})
	ps := make([]*partition, 0, mt.Partitions)
	t.partitions.Store(&ps)
	if err := r.addPartitions(t, mt.Partitions); err != nil {
		for _, p := range t.parts() {
			p.log.Close()
		}
		return nil, err
	}
	return t, nil
}

// addPartitions opens logs for partitions len(t.parts()) .. n-1.
func (r *registry) addPartitions(t *topic, n int32) error {
	old := t.parts()
	ps := append([]*partition(nil), old...)
	lc := logConfig(t.cfg.Load().eff)
	for i := int32(len(old)); i < n; i++ {
		dir := filepath.Join(r.dir, t.name+"-"+strconv.Itoa(int(i)))
		l, err := localstore.Open(dir, lc, r.log.With("topic", t.name, "partition", i))
		if err != nil {
			for _, p := range ps[len(old):] {
				p.log.Close()
			}
			return fmt.Errorf("broker: cannot open partition %s-%d: %w", t.name, i, err)
		}
		ps = append(ps, &partition{topic: t, index: i, log: l})
	}
	t.partitions.Store(&ps)
	return nil
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
	if err := validTopicName(name); err != nil {
		return nil, err
	}
	if partitions <= 0 {
		return nil, fmt.Errorf("%w: number of partitions must be at least 1, got %d", errInvalidParts, partitions)
	}
	if partitions > 100000 {
		return nil, fmt.Errorf("%w: %d partitions is more than one broker should hold (at most 100000)", errInvalidParts, partitions)
	}
	if err := r.cfg.ValidateTopicConfigs(overrides); err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidConfig, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.mu.byName[name]; ok {
		return nil, fmt.Errorf("%w: %q", errTopicExists, name)
	}
	if validateOnly {
		return nil, nil
	}
	var id [16]byte
	for id == ([16]byte{}) {
		rand.Read(id[:])
	}
	mt := metadata.Topic{Name: name, ID: id, Partitions: partitions, Configs: overrides}
	if err := r.meta.CreateTopic(mt); err != nil {
		return nil, err
	}
	t, err := r.load(mt)
	if err != nil {
		r.meta.DeleteTopic(name)
		return nil, err
	}
	r.mu.byName[name] = t
	r.mu.byID[id] = t
	r.log.Info("topic created", "topic", name, "partitions", partitions)
	return t, nil
}

// remove deletes a topic: out of the registry, then its metadata, then its files.
func (r *registry) remove(t *topic) error {
	r.mu.Lock()
	if r.mu.byName[t.name] != t {
		r.mu.Unlock()
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	delete(r.mu.byName, t.name)
	delete(r.mu.byID, t.id)
	r.mu.Unlock()

	// Rename first so a crash leaves directories that start-up removes.
	var dirs []string
	for _, p := range t.parts() {
		p.log.Close()
		dir := p.log.Dir()
		del := dir + "." + strconv.FormatInt(int64(p.index), 10) + deleteSuffix
		if err := os.Rename(dir, del); err == nil {
			dirs = append(dirs, del)
		} else {
			dirs = append(dirs, dir)
		}
		p.notify()
	}
	if err := r.meta.DeleteTopic(t.name); err != nil {
		return err
	}
	for _, d := range dirs {
		os.RemoveAll(d)
	}
	r.log.Info("topic deleted", "topic", t.name)
	return nil
}

// setConfig validates, persists and applies a topic's new overrides.
func (r *registry) setConfig(t *topic, overrides map[string]string, validateOnly bool) error {
	if err := r.cfg.ValidateTopicConfigs(overrides); err != nil {
		return fmt.Errorf("%w: %v", errInvalidConfig, err)
	}
	eff, err := r.cfg.Resolve(overrides)
	if err != nil {
		return fmt.Errorf("%w: %v", errInvalidConfig, err)
	}
	if validateOnly {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.meta.SetTopicConfigs(t.name, overrides); err != nil {
		return err
	}
	t.cfg.Store(&topicConfig{overrides: overrides, eff: eff})
	lc := logConfig(eff)
	for _, p := range t.parts() {
		p.log.SetConfig(lc)
	}
	return nil
}

// grow adds partitions up to n.
func (r *registry) grow(t *topic, n int32, validateOnly bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
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
	if err := r.addPartitions(t, n); err != nil {
		return err
	}
	return r.meta.SetPartitionCount(t.name, n)
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
