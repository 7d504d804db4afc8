package tier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
)

// Status describes the topic's partitions known to the manager (those it
// was handed by Manage or that have a remote index), by partition.
func (m *Manager) Status(topic string) []PartitionStatus {
	var out []PartitionStatus
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
			deleted, err := Reconcile(m.ctx, m.store, m.meta, m.cfg.OrphanGrace, false)
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
func Reconcile(ctx context.Context, store remotestore.Store, meta *metadata.Store, grace time.Duration, dryRun bool) ([]string, error) {
	now := time.Now()
	owners := make(map[tp]map[int64]string) // base -> upload id
	var orphans []string
	err := store.List(ctx, "", func(info remotestore.ObjectInfo) error {
		n, ok := parseKey(info.Key)
		if !ok || now.Sub(info.LastModified) < grace {
			return nil
		}
		key := tp{n.Topic, n.Partition}
		own, seen := owners[key]
		if !seen {
			segs, err := meta.RemoteSegments(n.Topic, n.Partition)
			if err != nil {
				return err
			}
			own = make(map[int64]string, len(segs))
			for _, s := range segs {
				own[s.BaseOffset] = s.UploadID
			}
			owners[key] = own
		}
		if own[n.Base] != n.UploadID {
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
		seg, found, err := meta.FloorRemoteSegment(n.Topic, n.Partition, n.Base)
		if err != nil {
			return deleted, err
		}
		if found && seg.BaseOffset == n.Base && seg.UploadID == n.UploadID {
			continue
		}
		if err := store.Delete(ctx, k); err != nil {
			return deleted, fmt.Errorf("tier: reconcile: delete %q: %w", k, err)
		}
		deleted = append(deleted, k)
	}
	return deleted, nil
}

// RecoverReport says what Recover did.
type RecoverReport struct {
	// Segments is the number of COPY_FINISHED entries written.
	Segments int
	// Partitions lists the partitions that have an index now.
	Partitions []metadata.TopicPartition
	// CreatedTopics names topics Recover created in the metadata store (with
	// as many partitions as the bucket shows and default configs), and
	// GrownTopics those whose partition count it raised.
	CreatedTopics, GrownTopics []string
	// Orphans are the tier's keys that no entry owns after recovery:
	// duplicate attempts at one base, a .log without a valid .idx or the
	// other way round. Reconcile deletes them after the grace period.
	Orphans []string
	// Problems describe objects that were skipped, one line each.
	Problems []string
}

// candidate is one upload attempt found in the bucket.
type candidate struct {
	name         objectName
	log, idx     *remotestore.ObjectInfo
	sc           *sidecar
	lastModified time.Time
}

// Recover rebuilds the remote index from a listing of the bucket alone: for
// every base offset, an upload whose .idx decodes, describes its partition
// and base, and whose .log exists with the size the sidecar gives becomes a
// COPY_FINISHED entry. Of several attempts at one base it keeps the one the
// index already names, else the newest; the rest are reported as orphans. A
// segment overlapping one kept before it is reported too. The log start
// offset of a partition that has none recorded is set to its first remote
// base. Run it with the broker stopped (the metadata store is exclusive).
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
	err := store.List(ctx, "", func(info remotestore.ObjectInfo) error {
		n, ok := parseKey(info.Key)
		if !ok {
			return nil
		}
		k := attemptKey{tp{n.Topic, n.Partition}, n.Base, n.UploadID}
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
	// Check each attempt; group the good ones by partition and base.
	byPart := make(map[tp]map[int64][]*candidate)
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
			default:
				c.sc = sc
			}
		}
		if problem != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s-%d base %d upload %s: %s", k.topic, k.partition, k.base, k.uploadID, problem))
			rep.Orphans = append(rep.Orphans, keysOf(c)...)
			continue
		}
		if byPart[k.tp] == nil {
			byPart[k.tp] = make(map[int64][]*candidate)
		}
		byPart[k.tp][k.base] = append(byPart[k.tp][k.base], c)
	}

	parts := make([]tp, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b tp) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		return int(a.partition - b.partition)
	})
	maxPart := make(map[string]int32)
	for _, p := range parts {
		maxPart[p.topic] = max(maxPart[p.topic], p.partition)
	}
	for topic, mp := range maxPart {
		t, err := meta.Topic(topic)
		switch {
		case errors.Is(err, metadata.ErrTopicNotFound):
			if err := meta.CreateTopic(metadata.Topic{Name: topic, Partitions: mp + 1}); err != nil {
				return rep, fmt.Errorf("tier: recover: create topic %q: %w", topic, err)
			}
			rep.CreatedTopics = append(rep.CreatedTopics, topic)
		case err != nil:
			return rep, fmt.Errorf("tier: recover: %w", err)
		case t.Partitions <= mp:
			if err := meta.SetPartitionCount(topic, mp+1); err != nil {
				return rep, fmt.Errorf("tier: recover: grow topic %q: %w", topic, err)
			}
			rep.GrownTopics = append(rep.GrownTopics, topic)
		}
	}
	slices.Sort(rep.CreatedTopics)
	slices.Sort(rep.GrownTopics)

	nowMs := time.Now().UnixMilli()
	for _, p := range parts {
		existing, err := meta.RemoteSegments(p.topic, p.partition)
		if err != nil {
			return rep, fmt.Errorf("tier: recover: %w", err)
		}
		named := make(map[int64]string)
		for _, s := range existing {
			named[s.BaseOffset] = s.UploadID
		}
		bases := make([]int64, 0, len(byPart[p]))
		for b := range byPart[p] {
			bases = append(bases, b)
		}
		slices.Sort(bases)
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
				FirstTimestamp: sc.FirstTimestamp, MaxTimestamp: sc.MaxTimestamp, Size: sc.Size,
				UploadID: keep.name.UploadID, State: metadata.CopyFinished, CRC32C: sc.LogCRC,
				RolledAtMs: keep.log.LastModified.UnixMilli(), UpdatedAtMs: nowMs,
			}
			if err := meta.PutRemoteSegment(p.topic, p.partition, seg); err != nil {
				return rep, fmt.Errorf("tier: recover: %w", err)
			}
			rep.Segments++
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
	slices.Sort(rep.Orphans)
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
