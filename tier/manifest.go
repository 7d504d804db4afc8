package tier

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
)

// Topic manifests. A manifest is a small object describing a topic as the
// metadata store holds it (name, ID, partition count, config overrides), so
// Recover can restore a topic as it was rather than with default configs
// (whose 7-day retention.ms would delete every older remote segment).
//
//	manifests/<topic>/<topic id, 32 hex>/<20-digit version>-<upload id>.json
//
// The key has 5 path elements and does not start with a 4-hex partition hash,
// so parseKey rejects it and the reconciler never touches it. Like segments, a
// manifest is never overwritten: every write has a fresh upload id.
//
// The object is JSON, {"manifest":{...},"crc32c":N}, where N is the CRC-32C
// (Castagnoli) of the exact bytes of the "manifest" value. A manifest whose
// checksum, format, or topic/ID/version do not match its key is ignored.
//
// Version: the newest manifest of a topic is the one with the largest
// version (ties, which one writer never makes, broken by upload id). A write
// lists the topic's manifests (every ID) first and takes
// max(wall clock in ms, largest version listed + 1), so versions only grow,
// across restarts, clock steps back, and deletions and re-creations of the
// name, while still reading as a time. Writes are serialised by the manager.
//
// Durability: the metadata store is the truth and is written first; the
// manifest follows asynchronously (manifestLoop), so creating or altering a
// topic never waits on the object store. A failed write is retried with
// backoff; a crash before the manifest landed is covered by the start-up
// check: New queues every topic, and a topic whose newest manifest does not
// describe its current state gets a new one. So no "pending" mark is needed in
// the metadata store: a pending manifest is one that differs from meta.db.
const (
	manifestRoot   = "manifests/"
	manifestSuffix = ".json"
	manifestFormat = 1
	versionDigits  = 20
	// maxManifestBytes bounds what Recover reads of one manifest object.
	maxManifestBytes = 1 << 20
	// manifestTimeout bounds one manifest write (list, get, put).
	manifestTimeout = 30 * time.Second
)

// manifest is a topic's description as stored in the bucket.
type manifest struct {
	Format      int               `json:"format"`
	Topic       string            `json:"topic"`
	TopicID     string            `json:"topic_id"` // 32 lower-case hex digits
	Version     int64             `json:"version"`
	Partitions  int32             `json:"partitions"`
	Configs     map[string]string `json:"configs"`
	WrittenAtMs int64             `json:"written_at_ms"`
}

type manifestEnvelope struct {
	Manifest json.RawMessage `json:"manifest"`
	CRC32C   uint32          `json:"crc32c"`
}

// manifestName is a parsed manifest key.
type manifestName struct {
	Key      string
	Topic    string
	ID       [16]byte
	Version  int64
	UploadID string
}

func topicIDHex(id [16]byte) string { return hex.EncodeToString(id[:]) }

func manifestTopicPrefix(topic string) string { return manifestRoot + topic + "/" }

func manifestKey(topic string, id [16]byte, version int64, uploadID string) string {
	return fmt.Sprintf("%s%s/%0*d-%s%s", manifestTopicPrefix(topic), topicIDHex(id), versionDigits, version, uploadID, manifestSuffix)
}

// parseManifestKey parses a key of the manifest layout.
func parseManifestKey(key string) (n manifestName, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0]+"/" != manifestRoot || parts[1] == "" || len(parts[2]) != 32 {
		return n, false
	}
	id, err := hex.DecodeString(parts[2])
	if err != nil || strings.ToLower(parts[2]) != parts[2] {
		return n, false
	}
	name, found := strings.CutSuffix(parts[3], manifestSuffix)
	if !found || len(name) != versionDigits+1+uploadIDLen || name[versionDigits] != '-' {
		return n, false
	}
	v, err := strconv.ParseInt(name[:versionDigits], 10, 64)
	if err != nil || v < 0 {
		return n, false
	}
	up := name[versionDigits+1:]
	if _, err := hex.DecodeString(up); err != nil || strings.ToLower(up) != up {
		return n, false
	}
	n = manifestName{Key: key, Topic: parts[1], Version: v, UploadID: up}
	copy(n.ID[:], id)
	return n, true
}

func encodeManifest(mf manifest) ([]byte, error) {
	body, err := json.Marshal(mf)
	if err != nil {
		return nil, err
	}
	return json.Marshal(manifestEnvelope{Manifest: body, CRC32C: crc32.Checksum(body, castagnoli)})
}

var errBadManifest = errors.New("tier: bad manifest")

// decodeManifest checks the checksum and format and that the manifest is the
// one its key names.
func decodeManifest(b []byte, n manifestName) (manifest, error) {
	var env manifestEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		return manifest{}, fmt.Errorf("%w: %v", errBadManifest, err)
	}
	if got := crc32.Checksum(env.Manifest, castagnoli); got != env.CRC32C {
		return manifest{}, fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x)", errBadManifest, env.CRC32C, got)
	}
	var mf manifest
	if err := json.Unmarshal(env.Manifest, &mf); err != nil {
		return manifest{}, fmt.Errorf("%w: %v", errBadManifest, err)
	}
	switch {
	case mf.Format != manifestFormat:
		return manifest{}, fmt.Errorf("%w: unknown format %d", errBadManifest, mf.Format)
	case mf.Topic != n.Topic || mf.TopicID != topicIDHex(n.ID) || mf.Version != n.Version:
		return manifest{}, fmt.Errorf("%w: describes %s id %s version %d", errBadManifest, mf.Topic, mf.TopicID, mf.Version)
	case mf.Partitions < 1:
		return manifest{}, fmt.Errorf("%w: %d partitions", errBadManifest, mf.Partitions)
	}
	return mf, nil
}

// listManifests lists the manifests of topic (every topic when empty).
func listManifests(ctx context.Context, store remotestore.Store, topic string) ([]manifestName, error) {
	prefix := manifestRoot
	if topic != "" {
		prefix = manifestTopicPrefix(topic)
	}
	var out []manifestName
	err := store.List(ctx, prefix, func(info remotestore.ObjectInfo) error {
		if n, ok := parseManifestKey(info.Key); ok && (topic == "" || n.Topic == topic) {
			out = append(out, n)
		}
		return nil
	})
	return out, err
}

// newestFirst sorts manifest names by version, then upload id, descending.
func newestFirst(ns []manifestName) {
	slices.SortFunc(ns, func(a, b manifestName) int {
		if c := cmp.Compare(b.Version, a.Version); c != 0 {
			return c
		}
		return cmp.Compare(b.UploadID, a.UploadID)
	})
}

// fetchManifest reads and decodes one manifest object.
func fetchManifest(ctx context.Context, store remotestore.Store, n manifestName) (manifest, error) {
	rc, err := store.GetRange(ctx, n.Key, 0, -1)
	if err != nil {
		return manifest{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if err != nil {
		return manifest{}, err
	}
	if len(b) > maxManifestBytes {
		return manifest{}, fmt.Errorf("%w: more than %d bytes", errBadManifest, maxManifestBytes)
	}
	return decodeManifest(b, n)
}

// newestManifest returns the newest manifest of ns that decodes, skipping
// (and describing in problems) those that do not. found is false when none does.
func newestManifest(ctx context.Context, store remotestore.Store, ns []manifestName) (mf manifest, n manifestName, found bool, problems []string, err error) {
	ns = slices.Clone(ns)
	newestFirst(ns)
	for _, c := range ns {
		mf, err := fetchManifest(ctx, store, c)
		switch {
		case err == nil:
			return mf, c, true, problems, nil
		case errors.Is(err, errBadManifest) || remotestore.IsNotFound(err):
			problems = append(problems, fmt.Sprintf("manifest %s: %v", c.Key, err))
		default:
			return manifest{}, manifestName{}, false, problems, err
		}
	}
	return manifest{}, manifestName{}, false, problems, nil
}

func manifestOf(t metadata.Topic, version, nowMs int64) manifest {
	cfg := t.Configs
	if cfg == nil {
		cfg = map[string]string{}
	}
	return manifest{
		Format: manifestFormat, Topic: t.Name, TopicID: topicIDHex(t.ID), Version: version,
		Partitions: t.Partitions, Configs: cfg, WrittenAtMs: nowMs,
	}
}

// describes reports whether mf describes t (ID, partitions, configs).
func (mf manifest) describes(t metadata.Topic) bool {
	return mf.TopicID == topicIDHex(t.ID) && mf.Partitions == t.Partitions &&
		maps.Equal(mf.Configs, t.Configs) // nil and empty maps are equal
}

// writeManifest makes the bucket's newest manifest of topic describe the
// topic as the metadata store holds it now; it writes nothing when it already
// does, or when the topic is gone. Callers hold Manager.manifestMu.
func (m *Manager) writeManifest(ctx context.Context, topic string) error {
	t, err := m.meta.Topic(topic)
	if errors.Is(err, metadata.ErrTopicNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ns, err := listManifests(ctx, m.store, topic)
	if err != nil {
		return fmt.Errorf("tier: list manifests of %q: %w", topic, err)
	}
	newestFirst(ns)
	var top int64 = -1
	if len(ns) > 0 {
		top = ns[0].Version
		if ns[0].ID == t.ID {
			mf, err := fetchManifest(ctx, m.store, ns[0])
			switch {
			case err == nil && mf.describes(t):
				return nil
			case err != nil && !errors.Is(err, errBadManifest) && !remotestore.IsNotFound(err):
				return fmt.Errorf("tier: read manifest %q: %w", ns[0].Key, err)
			}
		}
	}
	now := m.cfg.Now().UnixMilli()
	version := max(now, top+1)
	body, err := encodeManifest(manifestOf(t, version, now))
	if err != nil {
		return err
	}
	key := manifestKey(topic, t.ID, version, newUploadID())
	if err := m.store.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("tier: write manifest %q: %w", key, err)
	}
	m.m.manifestWrites.Inc()
	m.logger.Debug("manifest written", "topic", topic, "version", version, "partitions", t.Partitions, "key", key)
	return nil
}

// TopicChanged queues a manifest write for the topic: the broker calls it
// after it created the topic, changed its configs or its partition count in
// the metadata store. It never blocks; the write happens in the background
// and is retried until it lands.
func (m *Manager) TopicChanged(topic string) {
	m.manifests.Lock()
	m.manifests.gen++
	m.manifests.pending[topic] = manifestPending{gen: m.manifests.gen}
	m.m.manifestsPending.Set(float64(len(m.manifests.pending)))
	m.manifests.Unlock()
	select {
	case m.manifests.wake <- struct{}{}:
	default:
	}
}

// manifestPending is a topic whose manifest must be (re)checked.
type manifestPending struct {
	gen       uint64    // bumped by each TopicChanged
	notBefore time.Time // retry backoff
	failures  int
}

// ManifestsPending is the number of topics whose manifest is not yet
// known to be in the bucket.
func (m *Manager) ManifestsPending() int {
	m.manifests.Lock()
	defer m.manifests.Unlock()
	return len(m.manifests.pending)
}

// manifestLoop writes the queued manifests, one topic at a time, until Close.
func (m *Manager) manifestLoop() {
	defer m.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := m.cfg.Now()
		var (
			topic string
			item  manifestPending
			next  time.Time
		)
		m.manifests.Lock()
		for tp, p := range m.manifests.pending {
			if !p.notBefore.After(now) {
				if topic == "" || tp < topic {
					topic, item = tp, p
				}
			} else if next.IsZero() || p.notBefore.Before(next) {
				next = p.notBefore
			}
		}
		m.manifests.Unlock()
		if topic == "" {
			wait := time.Hour
			if !next.IsZero() {
				wait = max(next.Sub(now), time.Millisecond)
			}
			timer.Reset(wait)
			select {
			case <-m.ctx.Done():
				return
			case <-m.manifests.wake:
			case <-timer.C:
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			continue
		}
		ctx, cancel := context.WithTimeout(m.ctx, manifestTimeout)
		m.manifestMu.Lock()
		err := m.writeManifest(ctx, topic)
		m.manifestMu.Unlock()
		cancel()
		if m.ctx.Err() != nil {
			return
		}
		m.manifests.Lock()
		cur, ok := m.manifests.pending[topic]
		switch {
		case !ok:
		case err == nil && cur.gen == item.gen:
			delete(m.manifests.pending, topic)
		case err == nil:
			// Changed again while writing: write again.
		default:
			cur.failures++
			backoff := m.cfg.RetryBackoff << min(cur.failures-1, 20)
			if backoff > m.cfg.MaxRetryBackoff || backoff <= 0 {
				backoff = m.cfg.MaxRetryBackoff
			}
			cur.notBefore = m.cfg.Now().Add(backoff)
			m.manifests.pending[topic] = cur
		}
		m.m.manifestsPending.Set(float64(len(m.manifests.pending)))
		m.manifests.Unlock()
		if err != nil {
			if item.failures == 0 {
				m.logger.Warn("cannot write the topic manifest; retrying", "topic", topic, "err", err)
			} else {
				m.logger.Debug("cannot write the topic manifest; retrying", "topic", topic, "err", err)
			}
		}
	}
}

// DeleteTopicManifests deletes every manifest object of the topic ID. Call
// it once the topic is gone from the metadata store (so no new manifest of
// that ID can be written meanwhile). Deleting is idempotent.
func (m *Manager) DeleteTopicManifests(ctx context.Context, topic string, id [16]byte) error {
	m.manifestMu.Lock()
	defer m.manifestMu.Unlock()
	ns, err := listManifests(ctx, m.store, topic)
	if err != nil {
		return fmt.Errorf("tier: list manifests of %q: %w", topic, err)
	}
	var errs []error
	for _, n := range ns {
		if n.ID != id {
			continue
		}
		if err := m.store.Delete(ctx, n.Key); err != nil && !remotestore.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("tier: delete manifest %q: %w", n.Key, err))
		}
	}
	return errors.Join(errs...)
}
