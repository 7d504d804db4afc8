package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// policyHas reports whether the cleanup.policy list includes p.
func policyHas(policy, p string) bool {
	for e := range strings.SplitSeq(policy, ",") {
		if strings.TrimSpace(e) == p {
			return true
		}
	}
	return false
}

// Resolve returns a topic's effective configuration for the given overrides:
// each key from the overrides if present, else from the broker default. Errors
// are *Error and name the key: an unknown key, a bad value, or
// local.retention.* above retention.* (Kafka's rule, checked when
// remote.storage.enable is true).
func (b *Broker) Resolve(overrides map[string]string) (Topic, error) {
	return b.resolve(overrides, nil)
}

// ValidateTopicConfigs checks topic-level overrides (CreateTopics, AlterConfigs):
// each key known, each value valid, and the result consistent with the broker
// defaults. The error names the key and what is allowed.
func (b *Broker) ValidateTopicConfigs(overrides map[string]string) error {
	_, err := b.resolve(overrides, nil)
	return err
}

// resolve is Resolve; origins (from Load) says where broker keys were set, for
// errors about the broker defaults.
func (b *Broker) resolve(overrides map[string]string, origins map[string]string) (Topic, error) {
	for _, k := range slices.Sorted(maps.Keys(overrides)) {
		if !IsTopicConfig(k) {
			return Topic{}, unknownTopicKey(k)
		}
	}
	v := make(map[string]int64, len(topicSpecs))
	s := make(map[string]string, len(topicSpecs))
	names := make(map[string]string, len(topicSpecs)) // the key each value came from, for errors
	for _, ts := range topicSpecs {
		name, raw := ts.name, ""
		switch o, ok := overrides[ts.name]; {
		case ok:
			raw = o
		case ts.own != nil:
			raw = ts.own.def
		default:
			name = b.setSynonym(ts)
			raw = b.brokerValue(ts.synonyms[0])
		}
		val, err := ts.base.parse(name, raw)
		if err != nil {
			err.Origin = origins[name]
			return Topic{}, err
		}
		names[ts.name], s[ts.name] = name, val
		if n, err := strconv.ParseInt(val, 10, 64); err == nil {
			v[ts.name] = n
		}
	}
	t := Topic{
		CleanupPolicy:               s["cleanup.policy"],
		RetentionMs:                 v["retention.ms"],
		RetentionBytes:              v["retention.bytes"],
		SegmentBytes:                v["segment.bytes"],
		SegmentMs:                   v["segment.ms"],
		SegmentIndexBytes:           v["segment.index.bytes"],
		IndexIntervalBytes:          v["index.interval.bytes"],
		MaxMessageBytes:             v["max.message.bytes"],
		FlushMessages:               v["flush.messages"],
		FlushMs:                     v["flush.ms"],
		TimestampType:               s["message.timestamp.type"],
		RemoteStorageEnable:         s["remote.storage.enable"] == "true",
		LocalRetentionMs:            v["local.retention.ms"],
		LocalRetentionBytes:         v["local.retention.bytes"],
		SegmentJitterMs:             v["segment.jitter.ms"],
		FileDeleteDelayMs:           v["file.delete.delay.ms"],
		MessageTimestampBeforeMaxMs: v["message.timestamp.before.max.ms"],
		MessageTimestampAfterMaxMs:  v["message.timestamp.after.max.ms"],
		RemoteLogCopyDisable:        s["remote.log.copy.disable"] == "true",
		RemoteLogDeleteOnDisable:    s["remote.log.delete.on.disable"] == "true",
		CompressionType:             s["compression.type"],
		CompressionGzipLevel:        v["compression.gzip.level"],
		CompressionZstdLevel:        v["compression.zstd.level"],
		DeleteRetentionMs:           v["delete.retention.ms"],
		MinCompactionLagMs:          v["min.compaction.lag.ms"],
		MaxCompactionLagMs:          v["max.compaction.lag.ms"],
		MinInsyncReplicas:           v["min.insync.replicas"],
		UncleanLeaderElectionEnable: s["unclean.leader.election.enable"] == "true",
	}
	t.MinCleanableDirtyRatio, _ = strconv.ParseFloat(s["min.cleanable.dirty.ratio"], 64)
	if t.MinCompactionLagMs > t.MaxCompactionLagMs {
		// Kafka's LogConfig.validateValues.
		key := names["min.compaction.lag.ms"]
		e := valueError(key, s["min.compaction.lag.ms"], "%d is more than %s (%d) (allowed: 0 to %d)",
			t.MinCompactionLagMs, names["max.compaction.lag.ms"], t.MaxCompactionLagMs, t.MaxCompactionLagMs)
		e.Origin = origins[key]
		return Topic{}, e
	}
	if t.Compact() && overrides["remote.storage.enable"] == "" {
		// A compacted topic tiers only if the topic says so: the broker
		// default (true in Strata) would otherwise start uploading every
		// compacted topic, __consumer_offsets-like ones included, that was
		// local before tiered compaction existed.
		t.RemoteStorageEnable = false
	}
	if t.RemoteStorageEnable {
		for _, p := range [][2]string{{"local.retention.ms", "retention.ms"}, {"local.retention.bytes", "retention.bytes"}} {
			local, total := v[p[0]], v[p[1]]
			if total == -1 || local == -2 {
				continue
			}
			var why string
			switch {
			case local == -1:
				why = fmt.Sprintf("-1 (unlimited) is not allowed while %s is %d", names[p[1]], total)
			case local > total:
				why = fmt.Sprintf("%d is more than %s (%d)", local, names[p[1]], total)
			default:
				continue
			}
			key := names[p[0]]
			e := valueError(key, s[p[0]], "%s: the local log cannot outlive the whole log (allowed: -2, or 0 to %d)", why, total)
			e.Origin = origins[key]
			return Topic{}, e
		}
	}
	if t.RemoteStorageEnable && t.RemoteLogCopyDisable {
		// Kafka's rule (KAFKA-17236): nothing more is copied, so the local
		// log is kept by the topic-wide retention alone.
		for _, p := range [][2]string{{"local.retention.ms", "retention.ms"}, {"local.retention.bytes", "retention.bytes"}} {
			local, total := v[p[0]], v[p[1]]
			if local == -2 || local == total {
				continue
			}
			key := names[p[0]]
			e := valueError(key, s[p[0]], "with remote.log.copy.disable=true no more segments are copied, so %s must equal %s (allowed: -2 or %d)", p[0], p[1], total)
			e.Origin = origins[key]
			return Topic{}, e
		}
	}
	return t, nil
}

// setSynonym is the broker key a topic default comes from: the first synonym
// that was set explicitly, else the first.
func (b *Broker) setSynonym(ts *topicSpec) string {
	for _, syn := range ts.synonyms {
		if _, ok := b.values[syn]; ok {
			return syn
		}
	}
	return ts.synonyms[0]
}

func unknownTopicKey(key string) *Error {
	msg := fmt.Sprintf("unknown topic config %q", key)
	if s, ok := brokerByName[key]; ok && s.topic != "" {
		msg += fmt.Sprintf(" (%s is a broker config; the topic config is %s)", key, s.topic)
	} else if _, ok := brokerByName[key]; ok {
		msg += fmt.Sprintf(" (%s is a broker config)", key)
	} else {
		names := make([]string, len(topicSpecs))
		for i, t := range topicSpecs {
			names[i] = t.name
		}
		if near := suggest(key, names); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
	}
	return &Error{Key: key, Msg: msg}
}

// DescribeTopic lists every topic-level config with value and source: the
// override (SourceTopic), else the broker default, SourceStaticBroker if a
// broker key for it was set explicitly, SourceDefault if not. An override that
// does not validate is shown as given.
func (b *Broker) DescribeTopic(overrides map[string]string) []Entry {
	out := make([]Entry, 0, len(topicSpecs))
	for _, ts := range topicSpecs {
		e := Entry{Name: ts.name, Type: ts.base.kind.typ(), Doc: ts.doc}
		if ts.noEffect {
			e.Doc += " Accepted for compatibility, no effect."
		}
		if raw, ok := overrides[ts.name]; ok {
			e.Source, e.Value = SourceTopic, raw
			if v, err := ts.base.parse(ts.name, raw); err == nil {
				e.Value = v
			}
		} else if ts.own != nil {
			e.Source, e.Value = SourceDefault, ts.own.def
		} else {
			e.Source, e.Value = SourceDefault, b.brokerValue(ts.synonyms[0])
			if _, ok := b.values[b.setSynonym(ts)]; ok {
				e.Source = SourceStaticBroker
			}
		}
		out = append(out, e)
	}
	// A compacted topic tiers only if the topic says so (resolve).
	policy, remote := -1, -1
	for i, e := range out {
		switch e.Name {
		case "cleanup.policy":
			policy = i
		case "remote.storage.enable":
			remote = i
		}
	}
	if policy >= 0 && remote >= 0 && policyHas(out[policy].Value, "compact") && out[remote].Source != SourceTopic {
		out[remote].Value = "false"
		out[remote].Doc += " A topic whose cleanup.policy includes compact tiers only if the topic sets remote.storage.enable=true."
	}
	return out
}

// LocalRetention returns local.retention.ms and local.retention.bytes with -2
// replaced by retention.ms and retention.bytes.
func (t Topic) LocalRetention() (ms, bytes int64) {
	ms, bytes = t.LocalRetentionMs, t.LocalRetentionBytes
	if ms == -2 {
		ms = t.RetentionMs
	}
	if bytes == -2 {
		bytes = t.RetentionBytes
	}
	return ms, bytes
}
