package broker

// KIP-950, tiered storage disablement, on the alter path.
//
// remote.log.copy.disable needs nothing here: the housekeeping hands it to
// the tier, which stops uploading the topic's segments and goes on serving
// and expiring its remote ones.
//
// remote.storage.enable from true to false is refused (INVALID_CONFIG, as
// Kafka's LogConfig.validateTurningOffRemoteStorageWithDelete) unless the
// resulting configs have remote.log.delete.on.disable=true. Then the topic's
// remote data is deleted through the machinery of topic deletion
// (deletion.go), without deleting the topic:
//
//  1. Under the topic's admin lock, the tier stops the topic's rounds and holds
//     them (tier.DropRemote) while one bbolt transaction sets the topic's
//     configs, raises its partitions' recorded log start offsets to their
//     local log start, and moves its remote index under a RemoteOnly
//     deletion record (metadata.Store.DisableRemoteStorage). The broker then
//     applies the configs. Before the commit nothing has changed; after it
//     the remote data is no longer part of the topic, even after a crash.
//  2. The tier forgets the partitions' remote view: fetches and ListOffsets
//     see the local log only, whose start is the log start.
//  3. The deleter (deletion.go) purges the remote objects and cached chunks
//     recorded under the deletion, retrying while the store is down and
//     resuming after a restart; it never touches the topic's directories or
//     manifests. `strata tier ls` shows the backlog.
//
// Turning remote.storage.enable back on tiers afresh from the local log:
// the new uploads have new keys and a new index, whatever of the old data is
// still being purged.

import (
	"fmt"
	"maps"

	"github.com/stratalog/strata/config"
)

// disableRefused is the answer to remote.storage.enable=false without
// remote.log.delete.on.disable=true (Kafka's INVALID_CONFIG, in our words).
const disableRefused = "turning remote.storage.enable from true to false deletes the topic's remote data, so it needs remote.log.delete.on.disable=true; " +
	"to keep the remote data readable and stop uploading instead, set remote.storage.enable=true and remote.log.copy.disable=true"

// compactTieredRefused answers cleanup.policy=compact for a topic that
// tiers when the request does not say whether it goes on tiering (a
// compacted topic tiers only if the topic sets remote.storage.enable=true).
const compactTieredRefused = "cleanup.policy=compact on a topic with remote.storage.enable=true: a compacted topic tiers only if the topic sets remote.storage.enable; " +
	"to keep tiering it (tiered compaction), set remote.storage.enable=true in the same request; to compact it locally only, set remote.storage.enable=false and remote.log.delete.on.disable=true (its remote data is then deleted)"

// setTopicConfig is registry.setConfig with KIP-950's rules for turning
// remote storage off.
func (s *Server) setTopicConfig(t *topic, overrides map[string]string, validateOnly bool) error {
	if s.clustered() {
		return s.clusterSetConfig(t, overrides, validateOnly)
	}
	eff, err := s.cfg.Resolve(overrides)
	if err == nil && eff.Compact() && t.cfg.Load().eff.RemoteStorageEnable && !eff.RemoteStorageEnable {
		// A compacted topic does not tier (config.Topic.Compact).
		if s.tier == nil {
			return s.topics.setConfig(t, overrides, validateOnly) // nothing was tiered
		}
		if _, set := overrides["remote.storage.enable"]; !set {
			return fmt.Errorf("%w: %s", errInvalidConfig, compactTieredRefused)
		}
	}
	if err != nil || !t.cfg.Load().eff.RemoteStorageEnable || eff.RemoteStorageEnable {
		if err := s.topics.setConfig(t, overrides, validateOnly); err != nil {
			return err
		}
		if s.tier != nil && !validateOnly {
			// Under the topic's admin lock, so that no disablement (which
			// holds it) runs in between.
			t.admin.Lock()
			if t.cfg.Load().eff.RemoteStorageEnable {
				s.tier.ResumeRemote(t.id)
			}
			t.admin.Unlock()
		}
		return nil
	}
	if !eff.RemoteLogDeleteOnDisable {
		return fmt.Errorf("%w: %s", errInvalidConfig, disableRefused)
	}
	if validateOnly {
		return nil
	}
	return s.disableRemote(t, maps.Clone(overrides), eff)
}

// disableRemote turns remote storage off for t and deletes its remote data
// in the background (steps 1 to 3 above).
func (s *Server) disableRemote(t *topic, overrides map[string]string, eff config.Topic) error {
	r := s.topics
	// The topic's admin lock, not the registry's: the tier's rounds of this
	// topic may take a while to stop (a hung store), and produce and fetch
	// of other topics must not wait for that.
	t.admin.Lock()
	defer t.admin.Unlock()
	if !r.member(t) {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	pending := false
	commit := func() error {
		starts := make(map[int32]int64)
		for _, p := range t.parts() {
			starts[p.index] = p.log.LocalLogStartOffset()
		}
		_, ok, err := r.meta.DisableRemoteStorage(t.name, overrides, starts)
		if err != nil {
			return err
		}
		pending = ok
		t.cfg.Store(&topicConfig{overrides: overrides, eff: eff})
		lc, pc := logConfig(eff), r.partitionConfig(eff)
		for _, p := range t.parts() {
			p.log.Local().SetConfig(lc)
			p.log.SetConfig(pc)
		}
		return nil
	}
	var err error
	if s.tier != nil {
		err = s.tier.DropRemote(t.name, t.id, commit)
	} else {
		err = commit()
	}
	if err != nil {
		return err
	}
	r.notifyChanged(t.name)
	if pending {
		s.kickDeleter()
	}
	s.log.Info("remote storage disabled; the topic's remote data is deleted in the background",
		"topic", t.name, "remote_data", pending)
	return nil
}
