package tier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
)

// Status describes the topic's partitions known to the manager (those it
// was handed by Manage or that have a remote index), by partition.
func (m *Manager) Status(topic string) []PartitionStatus {
	var out []PartitionStatus
	var cost *TopicCost
	for _, ps := range m.allParts() {
		if ps.key.topic != topic {
			continue
		}
		v := m.viewOf(ps)
		st := PartitionStatus{Topic: topic, Partition: ps.key.partition, LogStartOffset: v.start, HighestOffset: v.highest}
		for _, s := range v.segs {
			st.Remote = append(st.Remote, RemoteSegmentStatus{
				BaseOffset: s.BaseOffset, EndOffset: s.EndOffset, Size: s.Size,
				State: s.State.String(), UploadID: s.UploadID, CRC32C: s.CRC32C, MaxTimestamp: s.MaxTimestamp,
				LogKey:     logKey(topic, ps.key.partition, s.BaseOffset, s.UploadID),
				SidecarKey: sidecarKey(topic, ps.key.partition, s.BaseOffset, s.UploadID),
			})
		}
		m.jobs.Lock()
		pl, hasLog := ps.log, ps.hasLog
		st.CopyLagBytes, st.CopyLagSegments, st.LastError = ps.lagBytes, ps.lagSegs, ps.lastErr
		m.jobs.Unlock()
		if cost == nil {
			c := m.TopicCost(topic)
			cost = &c
		}
		st.TopicCost = cost
		if hasLog {
			for _, s := range pl.Log.Segments() {
				st.Local = append(st.Local, LocalSegmentStatus{
					BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size, Active: s.Active,
					Uploaded: !s.Active && s.NextOffset-1 <= v.highest && s.BaseOffset >= v.start && v.start >= 0,
				})
			}
		}
		out = append(out, st)
	}
	return out
}

// reconcileLoop runs Reconcile every Config.ReconcileInterval until Close.
func (m *Manager) reconcileLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			var only func(tp) bool
			if m.cfg.Replicated {
				only = m.ledAndLearned
			}
			deleted, err := reconcile(m.ctx, m.store, m.meta, m.cfg.OrphanGrace, false, only)
			if err != nil && m.ctx.Err() == nil {
				m.logger.Warn("reconcile", "err", err)
			}
			if len(deleted) > 0 {
				m.logger.Info("reconcile deleted orphan objects", "count", len(deleted))
			}
		}
	}
}

// Reconcile lists the bucket and deletes the tier's objects that no index
// entry owns (an entry owns the two keys of its base and upload id, in any
// state) and whose LastModified is older than grace. Keys the tier did not
// write are left alone. It returns the keys deleted, or that would be with
// dryRun. An upload writes its COPY_STARTED entry before its first object,
// so an upload in progress is never taken for an orphan.
//
// In a cluster, where each broker's index holds only what it learned, run
// it on the broker that leads the partitions (the broker's own reconciler
// does so: it looks only at the partitions it leads and has learned).
func Reconcile(ctx context.Context, store remotestore.Store, meta *metadata.Store, grace time.Duration, dryRun bool) ([]string, error) {
	return reconcile(ctx, store, meta, grace, dryRun, nil)
}

// ledAndLearned reports whether this broker leads the partition and has
// learned its index from the bucket at its current leader epoch: the only
// partitions whose orphans a replicated broker may judge.
func (m *Manager) ledAndLearned(key tp) bool {
	ps := m.lookup(key)
	if ps == nil {
		return false
	}
	m.jobs.Lock()
	pl := ps.log
	m.jobs.Unlock()
	if !ps.opMu.TryLock() {
		return false // a round is running: next time
	}
	defer ps.opMu.Unlock()
	return pl.Replicated && stillLeads(pl) && ps.learnedEpoch == pl.LeaderEpoch
}

// reconcile is Reconcile limited to the partitions only accepts (nil: all).
func reconcile(ctx context.Context, store remotestore.Store, meta *metadata.Store, grace time.Duration, dryRun bool, only func(tp) bool) ([]string, error) {
	now := time.Now()
	owners := make(map[tp]map[owned]bool)
	var orphans []string
	err := store.List(ctx, "", func(info remotestore.ObjectInfo) error {
		n, ok := parseKey(info.Key)
		if !ok || now.Sub(info.LastModified) < grace {
			return nil
		}
		key := tp{n.Topic, n.Partition}
		if only != nil && !only(key) {
			return nil
		}
		own, seen := owners[key]
		if !seen {
			var err error
			if own, err = ownedKeys(meta, key); err != nil {
				return err
			}
			owners[key] = own
		}
		if !own[owned{n.Base, n.UploadID}] {
			orphans = append(orphans, info.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tier: reconcile: list: %w", err)
	}
	if dryRun || len(orphans) == 0 {
		return orphans, nil
	}
	// The index is read again just before deleting, in case an entry was
	// written since the listing looked (an upload that started meanwhile
	// only writes keys younger than grace, but a Recover may have run).
	var deleted []string
	for _, k := range orphans {
		n, _ := parseKey(k)
		own, err := ownedKeys(meta, tp{n.Topic, n.Partition})
		if err != nil {
			return deleted, err
		}
		if own[owned{n.Base, n.UploadID}] {
			continue
		}
		if err := store.Delete(ctx, k); err != nil {
			return deleted, fmt.Errorf("tier: reconcile: delete %q: %w", k, err)
		}
		deleted = append(deleted, k)
	}
	return deleted, nil
}

// owned names an upload attempt's objects: its base offset and upload id.
type owned struct {
	base     int64
	uploadID string
}

// ownedKeys returns the attempts the partition's records own: its index
// entries, whatever their state, and the objects its remote compaction in
// progress names (compact.go): the replacements while COMPACT_STARTED, the
// replaced segments once COMPACT_SWITCHED.
func ownedKeys(meta *metadata.Store, key tp) (map[owned]bool, error) {
	segs, err := meta.RemoteSegments(key.topic, key.partition)
	if err != nil {
		return nil, err
	}
	own := make(map[owned]bool, len(segs))
	for _, s := range segs {
		own[owned{s.BaseOffset, s.UploadID}] = true
	}
	c, ok, err := meta.RemoteCompaction(key.topic, key.partition)
	if err != nil {
		return nil, err
	}
	if ok {
		for _, s := range append(append([]metadata.RemoteSegment{}, c.Old...), c.New...) {
			own[owned{s.BaseOffset, s.UploadID}] = true
		}
	}
	return own, nil
}

// RecoverReport says what Recover did.
type RecoverReport struct {
	// Segments is the number of COPY_FINISHED entries written.
	Segments int
	// Partitions lists the partitions that have an index now.
	Partitions []metadata.TopicPartition
	// CreatedTopics names topics Recover created in the metadata store, and
	// GrownTopics those whose partition count it raised.
	CreatedTopics, GrownTopics []string
	// Topics describes each topic the bucket holds segments or manifests
	// of, by name: where its ID, partitions and configs came from, what was
	// attached, and its committed offsets.
	Topics []RecoveredTopic
	// Orphans are the tier's keys that no entry owns after recovery:
	// duplicate attempts at one base, a .log without a valid .idx or the
	// other way round. Reconcile deletes them after the grace period.
	Orphans []string
	// LeftAlone are the .log keys of segments whose sidecar names another
	// topic ID than the restored topic's (a deleted topic of the same name):
	// they were not attached. No entry owns them either, so Reconcile
	// deletes them after the grace period.
	LeftAlone []string
	// Problems describe objects that were skipped, one line each.
	Problems []string
}

// Where a recovered topic's ID, partition count and configs came from.
const (
	// SourceMetadata: the metadata store still had the topic; it is kept as
	// it was (the bucket can only raise its partition count).
	SourceMetadata = "metadata"
	// SourceManifest: the newest manifest in the bucket.
	SourceManifest = "manifest"
	// SourceNone: no manifest. The topic is restored with retention.ms=-1
	// and retention.bytes=-1 as overrides, so no default can delete its
	// remote segments; its retention must be set by hand.
	SourceNone = "none"
)

// RecoveredTopic is one topic as Recover restored it.
type RecoveredTopic struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Configs    map[string]string
	// Source is SourceMetadata, SourceManifest or SourceNone.
	Source string
	// ManifestVersion is the version of the manifest used (SourceManifest).
	ManifestVersion int64
	Created, Grown  bool
	// Segments is the number of segments attached; NoIDSegments those of
	// them whose sidecar predates topic IDs (version 1), which cannot be
	// told apart by ID; LeftAlone the segments of other topic IDs.
	Segments, NoIDSegments, LeftAlone int
	// CommittedOffsets is the number of committed group offsets of the
	// topic the metadata store holds: they are kept. Zero on a created
	// topic means its committed offsets are lost.
	CommittedOffsets int
	// Notes say what else an operator should know, one line each.
	Notes []string
}

// noDeletion are the overrides of a topic restored without a manifest.
var noDeletion = map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}

// candidate is one upload attempt found in the bucket.
type candidate struct {
	name         objectName
	log, idx     *remotestore.ObjectInfo
	sc           *sidecar
	lastModified time.Time
}

// Recover rebuilds the metadata of the tiered topics from a listing of the
// bucket alone. Run it with the broker stopped (the metadata store is
// exclusive).
//
// Topics: a topic the metadata store still has is kept as it is. Otherwise it
// is created with the ID, partition count and configs of its newest manifest;
// without a manifest, with remote deletion off (SourceNone) and, if its
// sidecars name topic IDs, the ID of the newest one. Recover never leaves a
// topic to retention on a guessed config.
//
// Segments: for every base offset, an upload whose .idx decodes, describes
// its partition and base, names the restored topic's ID (or no ID: sidecars
// written before IDs), and whose .log exists with the size the sidecar gives
// becomes a COPY_FINISHED entry. Segments of another topic ID are left alone
// (LeftAlone). Of several attempts at one base it keeps the one the index
// already names, else the newest; the rest are reported as orphans. A segment
// overlapping one kept before it is reported too. The log start offset of a
// partition that has none recorded is set to its first remote base.
func Recover(ctx context.Context, store remotestore.Store, meta *metadata.Store, logger *slog.Logger) (RecoverReport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var rep RecoverReport
	type attemptKey struct {
		tp
		base     int64
		uploadID string
	}
	attempts := make(map[attemptKey]*candidate)
	var order []attemptKey
	manifests := make(map[string][]manifestName)
	// Topics deleted with their cleanup pending: never restored, their
	// segments never attached (the broker's deletion job removes them).
	dels, err := meta.TopicDeletions()
	if err != nil {
		return rep, fmt.Errorf("tier: recover: %w", err)
	}
	deletedIDs := make(map[[16]byte]bool)
	deletedSegs := make(map[attemptKey]bool)
	for _, d := range dels {
		deletedIDs[d.ID] = true
		parts, err := meta.DeletedPartitions(d.ID)
		if err != nil {
			return rep, fmt.Errorf("tier: recover: %w", err)
		}
		for _, p := range parts {
			segs, err := meta.DeletedSegments(d.ID, p)
			if err != nil {
				return rep, fmt.Errorf("tier: recover: %w", err)
			}
			for _, sg := range segs {
				deletedSegs[attemptKey{tp{d.Name, p}, sg.BaseOffset, sg.UploadID}] = true
			}
		}
	}
	err = store.List(ctx, "", func(info remotestore.ObjectInfo) error {
		if mn, ok := parseManifestKey(info.Key); ok {
			if !deletedIDs[mn.ID] {
				manifests[mn.Topic] = append(manifests[mn.Topic], mn)
			}
			return nil
		}
		n, ok := parseKey(info.Key)
		if !ok {
			return nil
		}
		k := attemptKey{tp{n.Topic, n.Partition}, n.Base, n.UploadID}
		if deletedSegs[k] {
			return nil
		}
		c := attempts[k]
		if c == nil {
			c = &candidate{name: n}
			attempts[k] = c
			order = append(order, k)
		}
		if n.Suffix == logSuffix {
			c.log = &info
		} else {
			c.idx = &info
			c.lastModified = info.LastModified
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("tier: recover: list: %w", err)
	}
	keysOf := func(c *candidate) []string {
		var ks []string
		if c.log != nil {
			ks = append(ks, c.log.Key)
		}
		if c.idx != nil {
			ks = append(ks, c.idx.Key)
		}
		return ks
	}
	// Check each attempt; keep the good ones by topic.
	byTopic := make(map[string][]*candidate)
	for _, k := range order {
		c := attempts[k]
		problem := ""
		switch {
		case c.idx == nil:
			problem = "no sidecar"
		case c.log == nil:
			problem = "no .log object"
		default:
			sc, err := fetchSidecar(ctx, store, c.idx.Key)
			switch {
			case err != nil && (errors.Is(err, errBadSidecar) || remotestore.IsNotFound(err)):
				problem = err.Error()
			case err != nil:
				return rep, fmt.Errorf("tier: recover: %w", err)
			case sc.Topic != k.topic || sc.Partition != k.partition || sc.BaseOffset != k.base:
				problem = fmt.Sprintf("sidecar describes %s-%d base %d", sc.Topic, sc.Partition, sc.BaseOffset)
			case sc.Size != c.log.Size:
				problem = fmt.Sprintf(".log is %d bytes, the sidecar says %d", c.log.Size, sc.Size)
			case deletedIDs[sc.TopicID]:
				problem = "a segment of a deleted topic whose cleanup is pending"
			default:
				c.sc = sc
			}
		}
		if problem != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s-%d base %d upload %s: %s", k.topic, k.partition, k.base, k.uploadID, problem))
			rep.Orphans = append(rep.Orphans, keysOf(c)...)
			continue
		}
		byTopic[k.topic] = append(byTopic[k.topic], c)
	}

	// Committed offsets the metadata store holds, by topic.
	offsets := make(map[string]int)
	groups, err := meta.OffsetGroups()
	if err != nil {
		return rep, fmt.Errorf("tier: recover: %w", err)
	}
	for _, g := range groups {
		cs, err := meta.GroupOffsets(g)
		if err != nil {
			return rep, fmt.Errorf("tier: recover: %w", err)
		}
		for _, c := range cs {
			offsets[c.Topic]++
		}
	}

	// Restore each topic and choose the segments to attach.
	names := slices.Sorted(maps.Keys(byTopic))
	for n := range manifests {
		if _, ok := byTopic[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	byPart := make(map[tp]map[int64][]*candidate)
	rts := make(map[string]*RecoveredTopic, len(names))
	for _, topic := range names {
		rt := &RecoveredTopic{Name: topic}
		existing, err := meta.Topic(topic)
		exists := err == nil
		if err != nil && !errors.Is(err, metadata.ErrTopicNotFound) {
			return rep, fmt.Errorf("tier: recover: %w", err)
		}
		mf, mn, haveMF, problems, err := newestManifest(ctx, store, manifests[topic])
		if err != nil {
			return rep, fmt.Errorf("tier: recover: %w", err)
		}
		rep.Problems = append(rep.Problems, problems...)
		switch {
		case exists:
			rt.Source, rt.ID, rt.Partitions, rt.Configs = SourceMetadata, existing.ID, existing.Partitions, existing.Configs
			if haveMF && mn.ID != existing.ID {
				rt.Notes = append(rt.Notes, fmt.Sprintf("the metadata store's topic has ID %s, the bucket's newest manifest (version %d) names ID %s: the segments of %s are not attached",
					topicIDHex(existing.ID), mf.Version, topicIDHex(mn.ID), topicIDHex(mn.ID)))
			}
		case haveMF:
			rt.Source, rt.ID, rt.Partitions, rt.Configs, rt.ManifestVersion = SourceManifest, mn.ID, mf.Partitions, mf.Configs, mf.Version
		default:
			rt.Source, rt.Configs = SourceNone, maps.Clone(noDeletion)
			var newest *candidate
			for _, c := range byTopic[topic] {
				if c.sc.TopicID != ([16]byte{}) && (newest == nil || c.lastModified.After(newest.lastModified)) {
					newest = c
				}
			}
			if newest != nil {
				rt.ID = newest.sc.TopicID
			}
		}
		maxPart := int32(-1)
		for _, c := range byTopic[topic] {
			if id := c.sc.TopicID; id != ([16]byte{}) && id != rt.ID {
				rt.LeftAlone++
				rep.LeftAlone = append(rep.LeftAlone, c.log.Key)
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s-%d base %d upload %s: belongs to topic ID %s, not %s: left alone",
					topic, c.name.Partition, c.name.Base, c.name.UploadID, topicIDHex(id), topicIDHex(rt.ID)))
				continue
			}
			p := tp{topic, c.name.Partition}
			if byPart[p] == nil {
				byPart[p] = make(map[int64][]*candidate)
			}
			byPart[p][c.name.Base] = append(byPart[p][c.name.Base], c)
			maxPart = max(maxPart, c.name.Partition)
		}
		need := max(rt.Partitions, maxPart+1)
		switch {
		case exists && existing.Partitions < need:
			if err := meta.SetPartitionCount(topic, need); err != nil {
				return rep, fmt.Errorf("tier: recover: grow topic %q: %w", topic, err)
			}
			rt.Grown = true
			rep.GrownTopics = append(rep.GrownTopics, topic)
		case !exists:
			if rt.Partitions > 0 && need > rt.Partitions {
				rt.Notes = append(rt.Notes, fmt.Sprintf("the manifest says %d partitions, the bucket holds segments of partition %d: restored with %d",
					rt.Partitions, need-1, need))
			}
			t := metadata.Topic{Name: topic, ID: rt.ID, Partitions: need, Configs: rt.Configs}
			if err := meta.CreateTopic(t); err != nil {
				return rep, fmt.Errorf("tier: recover: create topic %q: %w", topic, err)
			}
			if rt.ID == ([16]byte{}) {
				if t, err = meta.Topic(topic); err != nil {
					return rep, fmt.Errorf("tier: recover: %w", err)
				}
				rt.ID = t.ID
			}
			rt.Created = true
			rep.CreatedTopics = append(rep.CreatedTopics, topic)
		}
		rt.Partitions = need
		rt.CommittedOffsets = offsets[topic]
		rts[topic] = rt
	}

	parts := slices.Collect(maps.Keys(byPart))
	slices.SortFunc(parts, func(a, b tp) int {
		if c := cmp.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return cmp.Compare(a.partition, b.partition)
	})
	nowMs := time.Now().UnixMilli()
	for _, p := range parts {
		rt := rts[p.topic]
		existing, err := meta.RemoteSegments(p.topic, p.partition)
		if err != nil {
			return rep, fmt.Errorf("tier: recover: %w", err)
		}
		named := make(map[int64]string)
		for _, s := range existing {
			named[s.BaseOffset] = s.UploadID
		}
		bases := slices.Sorted(maps.Keys(byPart[p]))
		lastEnd := int64(-1)
		first := int64(-1)
		for _, base := range bases {
			cands := byPart[p][base]
			slices.SortFunc(cands, func(a, b *candidate) int {
				if an, bn := a.name.UploadID == named[base], b.name.UploadID == named[base]; an != bn {
					if an {
						return -1
					}
					return 1
				}
				if c := b.lastModified.Compare(a.lastModified); c != 0 {
					return c
				}
				return cmp.Compare(a.name.UploadID, b.name.UploadID)
			})
			keep := cands[0]
			for _, c := range cands[1:] {
				rep.Orphans = append(rep.Orphans, keysOf(c)...)
			}
			if base <= lastEnd {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s-%d base %d upload %s: overlaps the segment ending at %d",
					p.topic, p.partition, base, keep.name.UploadID, lastEnd))
				rep.Orphans = append(rep.Orphans, keysOf(keep)...)
				continue
			}
			sc := keep.sc
			seg := metadata.RemoteSegment{
				BaseOffset: sc.BaseOffset, EndOffset: sc.EndOffset,
				FirstTimestamp: sc.FirstTimestamp, MaxTimestamp: sc.MaxTimestamp, Size: sc.Size, LeaderEpoch: sc.LeaderEpoch,
				UploadID: keep.name.UploadID, State: metadata.CopyFinished, CRC32C: sc.LogCRC,
				RolledAtMs: keep.log.LastModified.UnixMilli(), UpdatedAtMs: nowMs,
			}
			if err := meta.PutRemoteSegment(p.topic, p.partition, seg); err != nil {
				return rep, fmt.Errorf("tier: recover: %w", err)
			}
			rep.Segments++
			rt.Segments++
			if sc.TopicID == ([16]byte{}) {
				rt.NoIDSegments++
			}
			lastEnd = sc.EndOffset
			if first < 0 {
				first = sc.BaseOffset
			}
		}
		if first >= 0 {
			rep.Partitions = append(rep.Partitions, metadata.TopicPartition{Topic: p.topic, Partition: p.partition})
			if _, ok, err := meta.LogStartOffset(p.topic, p.partition); err == nil && !ok {
				if err := meta.SetLogStartOffset(p.topic, p.partition, first); err != nil {
					return rep, fmt.Errorf("tier: recover: %w", err)
				}
			}
		}
		logger.Info("recovered remote index", "topic", p.topic, "partition", p.partition, "first", first, "last", lastEnd)
	}
	for _, n := range names {
		rep.Topics = append(rep.Topics, *rts[n])
	}
	slices.Sort(rep.Orphans)
	slices.Sort(rep.LeftAlone)
	return rep, nil
}

// fetchSidecar reads and decodes a sidecar object.
func fetchSidecar(ctx context.Context, store remotestore.Store, key string) (*sidecar, error) {
	rc, err := store.GetRange(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSidecarBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSidecarBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", errBadSidecar, maxSidecarBytes)
	}
	return decodeSidecar(b)
}
