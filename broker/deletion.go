package broker

// Topic deletion is one committed decision, then cleanup, so that a crash at
// any instant leaves the topic either whole or gone:
//
//  1. The topic leaves the registry and its name is reserved (a CreateTopics
//     of the name gets TOPIC_ALREADY_EXISTS, "marked for deletion", as in
//     Kafka) until step 4.
//  2. One bbolt transaction removes the topic and records a TopicDeletion
//     with the topic's remote index (metadata.Store.DeleteTopic). Before it
//     commits nothing has changed; after it the topic is gone.
//  3. The tier forgets the topic (its rounds are cancelled and waited for),
//     the logs close, and the partition directories are renamed aside to
//     "<topic>-<p>.<topic id hex>-delete"; the log directory is fsynced and
//     the deletion marked LocalDone. A crash before that mark is finished at
//     the next start-up, before any topic is opened or created.
//  4. The name is released and DeleteTopics answers.
//  5. A background job (deleter) removes the renamed directories and, through
//     the tier, the remote objects and cached chunks, then drops the
//     deletion record. It resumes after any restart and retries while the
//     object store is down; strata_broker_topic_deletions_pending and
//     `strata tier ls` show its backlog.
//
// A topic re-created under the same name has a new ID, an empty remote index
// and fresh directories: it can read nothing of the old one.

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratalog/strata/internal/crashpoint"
	"github.com/stratalog/strata/metadata"
)

// deleteTopic deletes t (steps 1 to 4 above) and wakes the deleter.
func (s *Server) deleteTopic(t *topic) error {
	r := s.topics
	t.admin.Lock() // no config change or partition growth of t runs meanwhile
	defer t.admin.Unlock()
	if err := r.unlist(t); err != nil {
		return err
	}
	d, err := r.meta.DeleteTopic(t.name)
	if err != nil {
		r.relist(t)
		return err
	}
	crashpoint.At("delete-committed")
	if s.tier != nil {
		s.tier.ForgetTopic(t.name, t.id)
	}
	for _, p := range t.parts() {
		p.log.Close()
		p.notify()
	}
	err = r.finishLocal(d)
	r.release(t.name)
	s.kickDeleter()
	if err != nil {
		// The deletion is committed: the topic is gone. The next start-up
		// renames what could not be renamed now.
		s.log.Warn("topic deleted, but its directories could not be set aside; the next start finishes it", "topic", t.name, "err", err)
	}
	s.log.Info("topic deleted", "topic", t.name, "id", hex.EncodeToString(t.id[:]))
	return nil
}

// unlist takes t out of the registry and reserves its name.
func (r *registry) unlist(t *topic) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.byName[t.name] != t {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	delete(r.mu.byName, t.name)
	delete(r.mu.byID, t.id)
	r.mu.deleting[t.name] = true
	return nil
}

// relist undoes unlist after a deletion that did not commit.
func (r *registry) relist(t *topic) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.mu.deleting, t.name)
	r.mu.byName[t.name] = t
	r.mu.byID[t.id] = t
}

func (r *registry) release(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.mu.deleting, name)
}

// finishLocal renames the deleted topic's partition directories aside and
// marks the deletion LocalDone. Only called while no live topic has d.Name:
// under the name's reservation, or at start-up before topics are opened.
func (r *registry) finishLocal(d metadata.TopicDeletion) error {
	if err := r.setAside(d.Name, hex.EncodeToString(d.ID[:])); err != nil {
		return err
	}
	return r.meta.SetDeletionLocalDone(d.ID)
}

// setAside renames every "<name>-<p>" directory of the log directory to
// "<name>-<p>.<tag>-delete" and fsyncs the log directory, so the renames are
// durable before anything relies on them.
func (r *registry) setAside(name, tag string) error {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return err
	}
	renamed := false
	for _, e := range ents {
		p, ok := strings.CutPrefix(e.Name(), name+"-")
		if !e.IsDir() || !ok || !isPartitionNumber(p) {
			continue
		}
		from := filepath.Join(r.dir, e.Name())
		if err := os.Rename(from, from+"."+tag+deleteSuffix); err != nil {
			return err
		}
		renamed = true
	}
	if !renamed {
		return nil
	}
	return syncDir(r.dir)
}

func isPartitionNumber(s string) bool {
	n, err := strconv.ParseInt(s, 10, 32)
	return err == nil && n >= 0 && strconv.FormatInt(n, 10) == s
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// finishDeletionsAtStart completes step 3 of every deletion a crash
// interrupted, and handles directories set aside by older versions, which
// renamed before committing: one whose topic still exists is moved back.
// Called by openRegistry before any topic is opened.
func (r *registry) finishDeletionsAtStart() error {
	dels, err := r.meta.TopicDeletions()
	if err != nil {
		return err
	}
	for _, d := range dels {
		if d.LocalDone || d.RemoteOnly { // RemoteOnly: the topic lives, its directories stay
			continue
		}
		if err := r.finishLocal(d); err != nil {
			return fmt.Errorf("broker: cannot finish the deletion of topic %q: %w", d.Name, err)
		}
		r.log.Info("finished setting aside the directories of a deleted topic", "topic", d.Name)
	}
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), deleteSuffix)
		if !e.IsDir() || !ok {
			continue
		}
		dot := strings.LastIndexByte(base, '.')
		if dot < 0 || !isPartitionNumber(base[dot+1:]) {
			continue // this version's names end in the topic ID: the deleter's
		}
		// "<topic>-<p>.<p>-delete", from a version that renamed first.
		orig := base[:dot]
		i := strings.LastIndexByte(orig, '-')
		if i <= 0 {
			continue
		}
		from := filepath.Join(r.dir, e.Name())
		if mt, err := r.meta.Topic(orig[:i]); err == nil && mt.Partitions > 0 {
			if _, err := os.Stat(filepath.Join(r.dir, orig)); os.IsNotExist(err) {
				r.log.Warn("moving back the directory of a topic whose deletion never committed", "dir", orig)
				if err := os.Rename(from, filepath.Join(r.dir, orig)); err != nil {
					return err
				}
				continue
			}
		}
		os.RemoveAll(from)
	}
	return nil
}

// kickDeleter wakes the deleter.
func (s *Server) kickDeleter() {
	select {
	case s.deleteKick <- struct{}{}:
	default:
	}
}

// Backoff of the deleter while cleanup fails (the object store is down).
const (
	deleterMinBackoff = time.Second
	deleterMaxBackoff = time.Minute
)

// deleter is the background job of step 5. It runs until the server stops.
func (s *Server) deleter() {
	defer s.wg.Done()
	backoff := time.Duration(0)
	failing := false
	for {
		pending, err := s.purgeDeletions(s.ctx)
		switch {
		case err != nil && s.ctx.Err() == nil:
			if !failing {
				s.log.Warn("cannot finish the cleanup of deleted topics; retrying", "pending", pending, "err", err)
				failing = true
			}
			backoff = min(max(2*backoff, deleterMinBackoff), deleterMaxBackoff)
		case err == nil:
			if failing {
				s.log.Info("the cleanup of deleted topics goes on again")
				failing = false
			}
			backoff = 0
		}
		var wait <-chan time.Time
		var tm *time.Timer
		if backoff > 0 {
			tm = time.NewTimer(backoff)
			wait = tm.C
		}
		select {
		case <-s.ctx.Done():
		case <-s.deleteKick:
		case <-wait:
		}
		if tm != nil {
			tm.Stop()
		}
		if s.ctx.Err() != nil {
			return
		}
	}
}

// purgeDeletions runs one pass of cleanup over every pending deletion and
// returns how many remain.
func (s *Server) purgeDeletions(ctx context.Context) (int, error) {
	dels, err := s.meta.TopicDeletions()
	if err != nil {
		return 0, err
	}
	s.metrics.deletionsPending.Set(float64(len(dels)))
	var firstErr error
	left := 0
	for _, d := range dels {
		if ctx.Err() != nil {
			return len(dels), ctx.Err()
		}
		if err := s.purgeDeletion(ctx, d); err != nil {
			left++
			if firstErr == nil {
				firstErr = err
			}
			s.recordDeletionError(d.ID, err)
			continue
		}
		s.recordDeletionError(d.ID, nil)
	}
	s.metrics.deletionsPending.Set(float64(left))
	return left, firstErr
}

// purgeDeletion removes one deleted topic's directories, remote objects and
// cached chunks, then its record.
func (s *Server) purgeDeletion(ctx context.Context, d metadata.TopicDeletion) error {
	if !d.LocalDone {
		return nil // its DeleteTopics is still running (step 3)
	}
	if d.RemoteOnly {
		// KIP-950 disablement (remote_disable.go): the topic and its
		// directories stay; only the remote segments go.
		if s.tier != nil {
			if err := s.tier.PurgeTopic(ctx, d); err != nil {
				return err
			}
		}
		return s.meta.FinishTopicDeletion(d.ID)
	}
	suffix := "." + hex.EncodeToString(d.ID[:]) + deleteSuffix
	ents, err := os.ReadDir(s.topics.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasSuffix(e.Name(), suffix) {
			if err := os.RemoveAll(filepath.Join(s.topics.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	crashpoint.At("delete-local-removed")
	if s.tier != nil {
		if err := s.tier.PurgeTopic(ctx, d); err != nil {
			return err
		}
	}
	crashpoint.At("delete-remote-purged")
	return s.meta.FinishTopicDeletion(d.ID)
}

// DeletionStatus is one pending topic deletion, as `strata tier ls` shows it.
type DeletionStatus struct {
	Topic          string `json:"topic"`
	TopicID        string `json:"topic_id"`
	Partitions     int32  `json:"partitions"`
	DeletedAt      string `json:"deleted_at"`
	RemoteSegments int    `json:"remote_segments"`
	// RemoteOnly: the remote data of a live topic whose remote storage was
	// disabled (KIP-950); TopicID is then the topic's, not the record's.
	RemoteOnly bool   `json:"remote_only,omitempty"`
	id         string // the record's ID, hex: the key of its last error
	LastError  string `json:"last_error,omitempty"`
}

// PendingDeletions lists the deleted topics whose cleanup has not finished.
func PendingDeletions(meta *metadata.Store) ([]DeletionStatus, error) {
	dels, err := meta.TopicDeletions()
	if err != nil {
		return nil, err
	}
	out := make([]DeletionStatus, 0, len(dels))
	for _, d := range dels {
		st := DeletionStatus{
			Topic: d.Name, TopicID: hex.EncodeToString(d.ID[:]), Partitions: d.Partitions,
			DeletedAt:  time.UnixMilli(d.DeletedAtMs).UTC().Format(time.RFC3339),
			RemoteOnly: d.RemoteOnly, id: hex.EncodeToString(d.ID[:]),
		}
		if d.RemoteOnly {
			st.TopicID = hex.EncodeToString(d.TopicID[:])
		}
		parts, err := meta.DeletedPartitions(d.ID)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			segs, err := meta.DeletedSegments(d.ID, p)
			if err != nil {
				return nil, err
			}
			st.RemoteSegments += len(segs)
		}
		out = append(out, st)
	}
	return out, nil
}

// PendingDeletions is the running broker's list, with the last cleanup error
// of each.
func (s *Server) PendingDeletions() ([]DeletionStatus, error) {
	out, err := PendingDeletions(s.meta)
	if err != nil {
		return nil, err
	}
	s.delErrMu.Lock()
	defer s.delErrMu.Unlock()
	for i := range out {
		out[i].LastError = s.delErrs[out[i].id]
	}
	return out, nil
}

func (s *Server) recordDeletionError(id [16]byte, err error) {
	k := hex.EncodeToString(id[:])
	s.delErrMu.Lock()
	defer s.delErrMu.Unlock()
	if err == nil {
		delete(s.delErrs, k)
		return
	}
	if s.delErrs == nil {
		s.delErrs = map[string]string{}
	}
	s.delErrs[k] = err.Error()
}
