package broker

import (
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
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			for _, t := range s.topics.all() {
				for _, p := range t.parts() {
					if err := p.log.Tick(now); err != nil {
						s.log.Warn("log tick", "topic", t.name, "partition", p.index, "err", err)
					}
				}
			}
			if now.Sub(lastRetention) >= ms(s.cfg.LogRetentionCheckIntervalMs) {
				lastRetention = now
				s.enforceRetention(now)
			}
			if s.tier != nil && now.Sub(lastTier) >= ms(s.cfg.RemoteLogManagerTaskIntervalMs) {
				lastTier = now
				s.tier.Manage(s.ctx, s.partitionLogs())
			}
		}
	}
}

// partitionLogs describes every partition for the tier.
func (s *Server) partitionLogs() []tierapi.PartitionLog {
	var out []tierapi.PartitionLog
	for _, t := range s.topics.all() {
		c := t.cfg.Load().eff
		for _, p := range t.parts() {
			out = append(out, tierapi.PartitionLog{
				Topic: t.name, TopicID: t.id, Partition: p.index, Log: p.log,
				Remote:      c.RemoteStorageEnable,
				RetentionMs: c.RetentionMs, RetentionBytes: c.RetentionBytes,
				LocalRetentionMs: c.LocalRetentionMs, LocalRetentionBytes: c.LocalRetentionBytes,
			})
		}
	}
	return out
}

// enforceRetention deletes local segments past retention.ms / retention.bytes
// for partitions that do not tier; the tier applies retention to the others,
// since a local segment may go only once it is uploaded.
func (s *Server) enforceRetention(now time.Time) {
	for _, t := range s.topics.all() {
		c := t.cfg.Load().eff
		if s.tier != nil && c.RemoteStorageEnable {
			continue
		}
		for _, p := range t.parts() {
			s.applyLocalRetention(p, now, c.RetentionMs, c.RetentionBytes)
		}
	}
}

func (s *Server) applyLocalRetention(p *partition, now time.Time, retMs, retBytes int64) {
	segs := p.log.Segments()
	var items []localstore.RetentionItem
	var total int64
	for _, sg := range segs {
		total += sg.Size
		// The active segment goes by time only (rolled first), as in Kafka.
		if sg.Active && (sg.Size == 0 || retMs < 0) {
			continue
		}
		items = append(items, localstore.RetentionItem{NextOffset: sg.NextOffset, Size: sg.Size, MaxTimestamp: sg.MaxTimestamp})
	}
	cut := localstore.RetentionCutoff(items, total, now.UnixMilli(), retMs, retBytes)
	if cut < 0 {
		return
	}
	n, err := p.log.DeleteSegmentsBefore(cut)
	if err != nil {
		s.log.Warn("retention", "topic", p.topic.name, "partition", p.index, "err", err)
		return
	}
	if n > 0 {
		s.log.Info("retention deleted segments", "topic", p.topic.name, "partition", p.index, "segments", n, "log_start", p.log.LogStartOffset())
		if err := s.meta.SetLogStartOffset(p.topic.name, p.index, p.log.LogStartOffset()); err != nil {
			s.log.Warn("cannot persist log start offset", "err", err)
		}
	}
}
