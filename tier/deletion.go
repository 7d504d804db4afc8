package tier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
)

// Topic deletion is two steps (see metadata.TopicDeletion): the broker
// commits the deletion, which moves the topic's remote index under the
// deletion record, and calls ForgetTopic; a background job then calls
// PurgeTopic until it succeeds, across restarts.

// ForgetTopic stops tiering a deleted topic: the rounds of its partitions
// are cancelled (an upload in progress rolls itself back) and waited for,
// its partitions leave the manager, and a late Manage naming its topic ID is
// ignored. A topic re-created under the same name starts with nothing of the
// old one. It does not touch the object store: PurgeTopic does.
func (m *Manager) ForgetTopic(topic string, id [16]byte) {
	m.jobs.Lock()
	m.jobs.forgotten[id] = true
	m.jobs.Unlock()
	for _, ps := range m.stopRounds(topic, id, true) {
		m.setView(ps, nil)
		m.viewMu.Lock()
		if m.viewMu.parts[ps.key] == ps {
			delete(m.viewMu.parts, ps.key)
		}
		m.viewMu.Unlock()
		m.jobs.Lock()
		m.jobs.lagBytes -= ps.lagBytes
		m.jobs.lagSegs -= ps.lagSegs
		ps.lagBytes, ps.lagSegs = 0, 0
		m.m.copyLagBytes.Set(float64(m.jobs.lagBytes))
		m.m.copyLagSegs.Set(float64(m.jobs.lagSegs))
		m.jobs.Unlock()
		ps.opMu.Unlock()
	}
}

// stopRounds cancels the rounds of topic id's partitions (a partition of
// another topic of the same name is left alone), marks them deleted when
// del, and returns them with their opMu held: no round of them runs until
// the caller unlocks it.
func (m *Manager) stopRounds(topic string, id [16]byte, del bool) []*partState {
	var held []*partState
	for _, ps := range m.allParts() {
		if ps.key.topic != topic {
			continue
		}
		m.jobs.Lock()
		if ps.topicID != id && ps.topicID != ([16]byte{}) {
			m.jobs.Unlock()
			continue
		}
		if del {
			ps.deleted = true
		}
		if ps.cancel != nil {
			ps.cancel()
		}
		m.jobs.Unlock()
		ps.opMu.Lock() // wait for the round in progress
		held = append(held, ps)
	}
	return held
}

// DropRemote is KIP-950's remote.storage.enable=false with
// remote.log.delete.on.disable=true: the topic stays and keeps its local
// log, its remote tier goes. It stops the topic's rounds (cancelled, an
// upload in progress rolled back, and waited for) and holds them while
// commit runs: commit records the decision (metadata.DisableRemoteStorage
// moves the remote index under a RemoteOnly deletion) and applies the new
// configs. If commit fails nothing changes. If it succeeds the partitions
// forget their remote view (reads go to the local log only, whose start is
// the log start) and the topic does not tier until ResumeRemote, even if a
// Manage still says it does. PurgeTopic then deletes the objects.
func (m *Manager) DropRemote(topic string, id [16]byte, commit func() error) error {
	m.jobs.Lock()
	was := m.jobs.remoteOff[id]
	m.jobs.remoteOff[id] = true
	m.jobs.Unlock()
	held := m.stopRounds(topic, id, false)
	defer func() {
		for _, ps := range held {
			ps.opMu.Unlock()
		}
	}()
	if err := commit(); err != nil {
		if !was {
			m.jobs.Lock()
			delete(m.jobs.remoteOff, id)
			m.jobs.Unlock()
		}
		return err
	}
	for _, ps := range held {
		for _, seg := range m.viewOf(ps).segs {
			m.sidecars.remove(sidecarKey(ps.key.topic, ps.key.partition, seg.BaseOffset, seg.UploadID))
		}
		m.setView(ps, nil)
		m.jobs.Lock()
		ps.retentionCut = 0
		ps.failures, ps.retryAt, ps.lastErr = 0, time.Time{}, ""
		m.jobs.lagBytes -= ps.lagBytes
		m.jobs.lagSegs -= ps.lagSegs
		ps.lagBytes, ps.lagSegs, ps.lagOldest = 0, 0, time.Time{}
		m.m.copyLagBytes.Set(float64(m.jobs.lagBytes))
		m.m.copyLagSegs.Set(float64(m.jobs.lagSegs))
		m.jobs.Unlock()
	}
	return nil
}

// ResumeRemote lets a topic whose remote storage was disabled (DropRemote)
// tier again, afresh from its local log, once Manage says it does.
func (m *Manager) ResumeRemote(id [16]byte) {
	m.jobs.Lock()
	delete(m.jobs.remoteOff, id)
	m.jobs.Unlock()
}

// PurgeTopic deletes what a deleted topic (or a RemoteOnly deletion, whose
// topic and manifests stay) left in the object store and in the chunk cache: for every remote segment recorded under the deletion, its
// cached chunks, then its two objects, then the record. It stops at the
// first store error (the caller retries later) and may be repeated: deleting
// a missing object is not an error. Objects that no record names (an upload
// cut by a crash before its COPY_STARTED entry was written) are the
// reconciler's.
func (m *Manager) PurgeTopic(ctx context.Context, d metadata.TopicDeletion) error {
	parts, err := m.meta.DeletedPartitions(d.ID)
	if err != nil {
		return err
	}
	for _, p := range parts {
		segs, err := m.meta.DeletedSegments(d.ID, p)
		if err != nil {
			return err
		}
		key := tp{d.Name, p}
		for _, seg := range segs {
			if err := m.purgeCached(ctx, key, seg); err != nil {
				return fmt.Errorf("tier: purge deleted topic %q: %w", d.Name, err)
			}
			if err := m.deleteObjects(ctx, key, seg); err != nil {
				return fmt.Errorf("tier: purge deleted topic %q: %w", d.Name, err)
			}
			if err := m.meta.DropDeletedSegment(d.ID, p, seg.BaseOffset); err != nil {
				return err
			}
		}
	}
	if d.RemoteOnly {
		return nil // the topic lives on: its manifests stay
	}
	// Last, so that recover never finds a manifest without the segments
	// it describes being gone too.
	return m.DeleteTopicManifests(ctx, d.Name, d.ID)
}

// purgeCached drops a deleted segment's chunks from the chunk cache. The
// chunk table is in its sidecar; a sidecar already gone (a repeated purge)
// leaves nothing to find, and the entries age out of the cache. No reader can
// reach them either way: a chunk's cache name hashes its object key, which
// holds the upload id, and no other segment has that upload id.
func (m *Manager) purgeCached(ctx context.Context, key tp, seg metadata.RemoteSegment) error {
	if seg.State == metadata.CopyStarted {
		return nil // never served, never cached
	}
	k := sidecarKey(key.topic, key.partition, seg.BaseOffset, seg.UploadID)
	sc := m.sidecars.get(k)
	if sc == nil {
		var err error
		if sc, err = fetchSidecar(ctx, m.store, k); err != nil {
			if errors.Is(err, remotestore.ErrNotFound) || errors.Is(err, errBadSidecar) {
				return nil
			}
			return err
		}
	}
	for c, ch := range sc.Chunks {
		m.cache.Remove(m.chunk(key, seg, c, ch))
	}
	m.sidecars.remove(k)
	return nil
}
