package broker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/localstore"
)

// A compacted topic end to end with franz-go: keyed records overwritten many
// times (tombstones among them) in small segments are compacted by the
// broker's cleaner, and a consumer from offset 0 gets exactly the latest
// record of each key, in offset order, at its original offset. Before the
// cleaner, CreateTopics refused cleanup.policy=compact (INVALID_CONFIG).
func TestCompactedTopicKeepsLatestPerKey(t *testing.T) {
	tb := startBroker(t, "log.cleaner.backoff.ms=20")
	const topic = "compacted"
	tb.createTopic(topic, 1, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"segment.bytes":             kadm.StringPtr("2048"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
		"retention.ms":              kadm.StringPtr("1"), // compact alone: retention does not apply
	})
	if v := describeTopicValue(t, tb, topic, "remote.storage.enable"); v != "false" {
		t.Fatalf("a compacted topic shows remote.storage.enable=%q, want false: it does not tier", v)
	}
	cl := tb.client(kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	latest := map[string]*kgo.Record{}
	for round := 0; round < 40; round++ {
		var recs []*kgo.Record
		for k := 0; k < 25; k++ {
			r := &kgo.Record{Key: []byte(fmt.Sprintf("key-%02d", k)), Value: []byte(fmt.Sprintf("round %d of key %d %s", round, k, strings.Repeat("x", k)))}
			if k%7 == 3 && round == 39 {
				r.Value = nil // the last word on these keys is a tombstone
			}
			recs = append(recs, r)
		}
		produceSync(t, cl, recs...)
		for _, r := range recs {
			latest[string(r.Key)] = r
		}
	}
	tail := &kgo.Record{Key: []byte("tail"), Value: []byte("tail")}
	produceSync(t, cl, tail)
	latest["tail"] = tail
	// The active segment is never cleaned: roll it so that all is cleanable.
	p := tb.srv.topics.get(topic).parts()[0]
	if err := p.log.Local().Roll(); err != nil {
		t.Fatal(err)
	}
	leo := p.log.Local().LogEndOffset()
	if p.log.Local().LogStartOffset() != 0 {
		t.Fatalf("retention.ms deleted segments of a compact-only topic: log start %d", p.log.Local().LogStartOffset())
	}
	wait.For(t, 60*time.Second, "the cleaner to clean the whole cleanable log", func() bool {
		st := p.log.Local().CleanState(0, time.Now())
		return tb.srv.Metrics().CleanerRuns() > 0 && st.DirtyBytes == 0 && st.FirstDirtyOffset == leo && st.CleanableEnd == leo
	})
	if tb.srv.Metrics().CleanerRecordsRemoved() == 0 {
		t.Fatal("the cleaner removed no record")
	}
	m := tb.srv.Metrics()
	wait.For(t, 30*time.Second, "the per-partition gauges", func() bool {
		ratio, ok1 := gaugeValue(t, m.cleanerDirtyRatio, topic)
		since, ok2 := gaugeValue(t, m.cleanerSinceClean, topic)
		return ok1 && ok2 && ratio == 0 && since >= 0
	})

	var want []*kgo.Record
	for _, r := range latest {
		want = append(want, r)
	}
	slicesSortByOffset(want)
	consumer := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, consumer, len(want), 30*time.Second)
	if len(got) != len(want) {
		t.Fatalf("consumed %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.Offset != w.Offset || string(r.Key) != string(w.Key) || string(r.Value) != string(w.Value) || (r.Value == nil) != (w.Value == nil) {
			t.Fatalf("record %d: offset %d key %q value %q, want offset %d key %q value %q", i, r.Offset, r.Key, r.Value, w.Offset, w.Key, w.Value)
		}
	}

	// A record without a key is refused: INVALID_RECORD.
	err := cl.ProduceSync(ctxT(t, 30*time.Second), &kgo.Record{Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless produce to a compacted topic: %v, want INVALID_RECORD", err)
	}
}

func slicesSortByOffset(rs []*kgo.Record) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Offset < rs[j-1].Offset; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// cleanup.policy changes both ways; compact with remote.storage.enable=true
// tiers (tiered compaction); a tiering topic becomes compacted only if the
// request says whether it goes on tiering.
func TestCleanupPolicyAlterAndTiering(t *testing.T) {
	tb := startBroker(t)
	adm := tb.admin()
	ctx := ctxT(t, 30*time.Second)
	r, _ := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact"), "remote.storage.enable": kadm.StringPtr("true")}, "both")
	if r.Err != nil {
		t.Fatalf("compact with remote.storage.enable=true: %v %q", r.Err, r.ErrMessage)
	}
	if v := describeTopicValue(t, tb, "both", "remote.storage.enable"); v != "true" {
		t.Fatalf("a tiered compacted topic shows remote.storage.enable=%q", v)
	}
	tb.createTopic("plain", 1, nil)
	err := alterTopic(t, tb, "plain", false, set("cleanup.policy", "compact"))
	if !errors.Is(err, kerr.InvalidConfig) || !strings.Contains(err.Error(), "remote.storage.enable=true in the same request") {
		t.Fatalf("compact on a tiering topic: %v, want INVALID_CONFIG saying how to keep tiering", err)
	}
	if err := alterTopic(t, tb, "plain", false, set("cleanup.policy", "compact,delete"), set("remote.storage.enable", "false"),
		set("remote.log.delete.on.disable", "true")); err != nil {
		t.Fatalf("compact,delete with remote storage off: %v", err)
	}
	if v := describeTopicValue(t, tb, "plain", "cleanup.policy"); v != "compact,delete" {
		t.Fatalf("cleanup.policy %q", v)
	}
	cl := tb.client(kgo.DefaultProduceTopic("plain"))
	if err := cl.ProduceSync(ctxT(t, 30*time.Second), &kgo.Record{Value: []byte("no key")}).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless produce after the change to compact: %v", err)
	}
	if err := alterTopic(t, tb, "plain", false, set("cleanup.policy", "delete")); err != nil {
		t.Fatalf("back to delete: %v", err)
	}
	produceSync(t, cl, &kgo.Record{Value: []byte("no key")})
}

// An idempotent producer's last batch, all of whose records a later producer
// overwrote, stays as an empty batch (its sequence survives); franz-go reads
// past it, also after a restart that reopens the cleaned log.
func TestCompactedEmptiedProducerBatchReadable(t *testing.T) {
	tb := startBroker(t, "log.cleaner.backoff.ms=20")
	const topic = "emptied"
	tb.createTopic(topic, 1, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.01"),
	})
	idem := tb.client(kgo.DefaultProduceTopic(topic))
	plain := tb.client(kgo.DefaultProduceTopic(topic), kgo.DisableIdempotentWrite())
	produceSync(t, idem, &kgo.Record{Key: []byte("a"), Value: []byte("idem-1")}, &kgo.Record{Key: []byte("b"), Value: []byte("idem-1")})
	later := []*kgo.Record{{Key: []byte("a"), Value: []byte("plain-2")}, {Key: []byte("b"), Value: []byte("plain-2")}}
	produceSync(t, plain, later...)
	p := tb.srv.topics.get(topic).parts()[0]
	if err := p.log.Local().Roll(); err != nil {
		t.Fatal(err)
	}
	leo := p.log.Local().LogEndOffset()
	wait.For(t, 30*time.Second, "the cleaner to clean the log", func() bool {
		st := p.log.Local().CleanState(0, time.Now())
		return st.FirstDirtyOffset == leo && tb.srv.Metrics().CleanerRecordsRemoved() == 2
	})
	sl, err := p.log.Local().Read(0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, localstore.HeaderSize)
	_, err = sl.File.ReadAt(b, sl.Pos)
	sl.Done()
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := localstore.ParseBatchHeader(b); h.BaseOffset != 0 || h.NumRecords != 0 || h.ProducerID < 0 || h.LastOffsetDelta != 1 {
		t.Fatalf("first batch after cleaning %+v, want the idempotent producer's emptied batch", h)
	}
	tb.restart()
	idem = tb.client(kgo.DefaultProduceTopic(topic))
	next := &kgo.Record{Key: []byte("c"), Value: []byte("idem-2")}
	produceSync(t, idem, next)
	consumer := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, consumer, 3, 30*time.Second)
	want := append(later, next)
	for i, r := range got {
		if r.Offset != want[i].Offset || string(r.Value) != string(want[i].Value) {
			t.Fatalf("record %d: offset %d %q, want offset %d %q", i, r.Offset, r.Value, want[i].Offset, want[i].Value)
		}
	}
}

// gaugeValue reads the series of vec labelled topic, partition 0.
func gaugeValue(t *testing.T, vec *prometheus.GaugeVec, topic string) (float64, bool) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(vec)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["topic"] == topic && labels["partition"] == "0" {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}
