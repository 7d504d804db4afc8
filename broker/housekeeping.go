package broker

import (
	"errors"
	"log/slog"
	"time"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/tier/tierapi"
)

// housekeeping runs the periodic work: time-based rolls and flushes every
// second, retention every log.retention.check.interval.ms, and the tiering
// rounds every remote.log.manager.task.interval.ms.
func (s *Server) housekeeping() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRetention, lastTier := time.Now(), time.Time{}
	failing := failingLogs{}
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.tickLogs(now, failing)
			// In a cluster every replica runs the rounds too: the leader
			// uploads, every replica learns the index from the bucket
			// (cluster_tier.go).
			tierDue := s.tier != nil && now.Sub(lastTier) >= ms(s.cfg.RemoteLogManagerTaskIntervalMs)
			// Retention runs every log.retention.check.interval.ms, and with
			// each tiering round too: a segment the round uploaded leaves the
			// local disk at the next round (local.retention.*), not only
			// after the retention interval (Kafka's default 5 minutes).
			if tierDue || now.Sub(lastRetention) >= ms(s.cfg.LogRetentionCheckIntervalMs) {
				lastRetention = now
				s.enforceRetention(now)
			}
			if tierDue {
				lastTier = now
				s.tier.Manage(s.ctx, s.partitionLogs())
			}
		}
	}
}

// failingLogs holds the partitions whose last Tick failed, with the error.
type failingLogs map[*partition]error

// tickLogs runs every partition log's Tick (time-based roll and flush,
// removal of deleted segment files). A log's write error is sticky (a full
// or failing disk fails every later write, until a restart), so a failing
// partition would fail every tick: it is logged when it starts failing (WARN)
// and when it recovers (INFO), not every second.
func (s *Server) tickLogs(now time.Time, failing failingLogs) {
	seen := make(map[*partition]bool, len(failing))
	for _, t := range s.topics.all() {
		for _, p := range t.parts() {
			err := p.log.Tick(now)
			if errors.Is(err, localstore.ErrClosed) {
				continue // its topic is being deleted
			}
			seen[p] = true
			failing.note(s.log, p, err)
		}
	}
	for p := range failing {
		if !seen[p] {
			delete(failing, p) // deleted since
		}
	}
}

// note records p's latest tick result and logs a change of state.
func (f failingLogs) note(log *slog.Logger, p *partition, err error) {
	_, was := f[p]
	switch {
	case err != nil && !was:
		f[p] = err
		log.Warn("partition log failing: produce to it gets KAFKA_STORAGE_ERROR until the disk is fixed and the broker restarted",
			"topic", p.topic.name, "partition", p.index, "err", err)
	case err == nil && was:
		delete(f, p)
		log.Info("partition log recovered", "topic", p.topic.name, "partition", p.index)
	}
}

// partitionLogs describes every partition for the tier.
func (s *Server) partitionLogs() []tierapi.PartitionLog {
	var out []tierapi.PartitionLog
	for _, t := range s.topics.all() {
		c := t.cfg.Load().eff
		for _, p := range t.parts() {
			pl := tierapi.PartitionLog{
				Topic: t.name, TopicID: t.id, Partition: p.index, Log: p.log.Local(),
				Remote: c.RemoteStorageEnable, CopyDisabled: c.RemoteLogCopyDisable,
			}
			if c.Compact() {
				pl.Compaction = &tierapi.Compaction{MinCompactionLagMs: c.MinCompactionLagMs, MaxCompactionLagMs: c.MaxCompactionLagMs,
					DeleteRetentionMs: c.DeleteRetentionMs, MinCleanableDirtyRatio: c.MinCleanableDirtyRatio}
			}
			if s.clustered() {
				s.replicatedTierLog(p, &pl)
			}
			out = append(out, pl)
		}
	}
	return out
}

// enforceRetention runs every partition's retention (package partition: one
// cut-off over the whole log, local segments deleted here, remote ones by
// the tier's next round).
func (s *Server) enforceRetention(now time.Time) {
	for _, t := range s.topics.all() {
		for _, p := range t.parts() {
			n, err := p.log.Retention(now)
			if errors.Is(err, localstore.ErrClosed) {
				continue // its topic is being deleted
			}
			if err != nil {
				s.log.Warn("retention", "topic", t.name, "partition", p.index, "err", err)
			}
			if n > 0 {
				s.log.Debug("retention deleted segments", "topic", t.name, "partition", p.index, "segments", n,
					"log_start", p.log.LogStartOffset(), "local_log_start", p.log.LocalLogStartOffset())
			}
		}
	}
}
