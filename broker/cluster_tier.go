package broker

// Tiering in a cluster: what the tier is told of each partition (see package
// tier, "Replicas"). Only the leader uploads, and only segments wholly below
// the high watermark; every upload is fenced by the leader epoch it started
// under; every replica learns the remote index from the bucket.

import "github.com/stratalog/strata/tier/tierapi"

// replicatedTierLog fills in pl's cluster fields for partition p: whether
// this broker leads it and at which leader epoch, the check an upload makes
// before it commits, and the high watermark that bounds uploads.
func (s *Server) replicatedTierLog(p *partition, pl *tierapi.PartitionLog) {
	pl.Replicated = true
	pl.LeaderEpoch = -1
	pl.HighWatermark = p.log.HighWatermark
	r := replicaFor(p)
	if r == nil {
		return // not a replica of it: it holds nothing to upload
	}
	leader, epoch := r.isLeader()
	pl.Leader = leader && !s.fenced()
	pl.LeaderEpoch = epoch
	pl.StillLeader = func(epoch int32) bool {
		leader, cur := r.isLeader()
		return leader && cur == epoch && !s.fenced()
	}
}
