package tier

import (
	"bytes"
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
)

// recoverFresh runs Recover from the env's bucket into a new, empty metadata
// store, as after the loss of the data directory.
func recoverFresh(t *testing.T, e *env) (*metadata.Store, RecoverReport) {
	t.Helper()
	fresh, err := metadata.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	rep, err := Recover(context.Background(), e.mem, fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fresh, rep
}

// manifestKeys lists the manifest objects of the bucket.
func (e *env) manifestKeys() []string {
	e.t.Helper()
	var ks []string
	if err := e.mem.List(context.Background(), "manifests/", func(o remotestore.ObjectInfo) error {
		ks = append(ks, o.Key)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return ks
}

// A topic with retention.ms=-1, grown to 3 partitions: after the data
// directory is lost, Recover restores its ID, partition count and configs.
func TestRecoverRestoresTopicFromManifest(t *testing.T) {
	e := newEnv(t, nil)
	cfg := map[string]string{"retention.ms": "-1", "segment.bytes": "1048576"}
	if err := e.meta.SetTopicConfigs(testTopic, cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.meta.SetPartitionCount(testTopic, 3); err != nil {
		t.Fatal(err)
	}
	e.open() // the start-up check writes the manifest of the changed topic
	for range 3 {
		e.segment(2, 10)
	}
	e.manage()
	orig, err := e.meta.Topic(testTopic)
	if err != nil {
		t.Fatal(err)
	}
	wait.Eventually(t, "a manifest of the current topic", func() bool {
		fresh, _ := recoverFresh(t, e)
		got, err := fresh.Topic(testTopic)
		return err == nil && got.ID == orig.ID && got.Partitions == 3 && maps.Equal(got.Configs, cfg)
	})
	fresh, rep := recoverFresh(t, e)
	if segs, _ := fresh.RemoteSegments(testTopic, 0); len(segs) != 3 || rep.Segments != 3 {
		t.Fatalf("recovered %d segments (report %d), want 3", len(segs), rep.Segments)
	}
	if len(rep.Topics) != 1 || rep.Topics[0].Source != SourceManifest || !rep.Topics[0].Created || rep.Topics[0].Segments != 3 ||
		rep.Topics[0].CommittedOffsets != 0 {
		t.Fatalf("report %+v", rep.Topics)
	}
}

// The manifest follows every change, and the newest wins: versions only grow,
// even when the clock steps back.
func TestManifestFollowsChangesNewestWins(t *testing.T) {
	e := newEnv(t, nil)
	wait.Eventually(t, "the first manifest", func() bool { return len(e.manifestKeys()) == 1 })
	e.clock.Advance(-time.Hour) // a clock step back must not make the next manifest older
	if err := e.meta.SetTopicConfigs(testTopic, map[string]string{"retention.bytes": "-1"}); err != nil {
		t.Fatal(err)
	}
	e.m.TopicChanged(testTopic)
	wait.Eventually(t, "the second manifest", func() bool { return len(e.manifestKeys()) == 2 })
	// Nothing changed: no new manifest (the start-up check finds it current).
	e.open()
	e.m.TopicChanged(testTopic)
	wait.Eventually(t, "the check", func() bool { return e.m.ManifestsPending() == 0 })
	if n := len(e.manifestKeys()); n != 2 {
		t.Fatalf("%d manifests after a no-op check, want 2", n)
	}
	fresh, rep := recoverFresh(t, e)
	got, err := fresh.Topic(testTopic)
	if err != nil || got.Configs["retention.bytes"] != "-1" || rep.Topics[0].Source != SourceManifest {
		t.Fatalf("recovered %+v %v from %v", got, err, e.manifestKeys())
	}
	// A corrupt newest manifest is skipped for the one before it, and reported.
	ks := e.manifestKeys()
	slices.Sort(ks)
	newest := ks[len(ks)-1]
	b := e.object(newest)
	b[len(b)/2] ^= 1
	if err := e.mem.Put(context.Background(), newest, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	fresh, rep = recoverFresh(t, e)
	if got, _ := fresh.Topic(testTopic); len(got.Configs) != 0 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], newest) {
		t.Fatalf("with a corrupt newest manifest: %+v, problems %q", got, rep.Problems)
	}
	// DeleteTopicManifests removes them all.
	if err := e.m.DeleteTopicManifests(context.Background(), testTopic, got.ID); err != nil {
		t.Fatal(err)
	}
	if ks := e.manifestKeys(); len(ks) != 0 {
		t.Fatalf("manifests left: %v", ks)
	}
}

// While the store fails, topic changes go on and the manifest waits; once it
// works again the manifest lands.
func TestManifestLandsAfterStoreOutage(t *testing.T) {
	e := newEnv(t, nil)
	e.m.Close()
	remove := e.fault.Inject(faultstore.Fault{})
	cfg := map[string]string{"retention.ms": "-1"}
	if err := e.meta.SetTopicConfigs(testTopic, cfg); err != nil {
		t.Fatal(err)
	}
	before := e.manifestKeys()
	lists := e.fault.Calls(remotestore.OpList)
	e.open()
	wait.Eventually(t, "failed manifest writes, retried", func() bool {
		e.clock.Advance(time.Second) // past the retry backoff
		return e.fault.Calls(remotestore.OpList) >= lists+3
	})
	if ks := e.manifestKeys(); !slices.Equal(ks, before) {
		t.Fatalf("manifests written through a failing store: %v", ks)
	}
	remove()
	wait.Eventually(t, "the manifest after the outage", func() bool {
		e.clock.Advance(time.Second) // past the retry backoff
		fresh, _ := recoverFresh(t, e)
		got, err := fresh.Topic(testTopic)
		return err == nil && maps.Equal(got.Configs, cfg)
	})
}

// A deleted topic's segments are still in the bucket when a topic of the
// same name is created: Recover attaches only the new topic's.
func TestRecoverAttachesOnlyTheNewestTopicID(t *testing.T) {
	e := newEnv(t, nil)
	for range 3 {
		e.segment(2, 10)
	}
	e.manage()
	old := e.remote()
	if len(old) != 3 {
		t.Fatalf("old topic: %d segments", len(old))
	}
	// Delete the topic (its objects stay: deletion is asynchronous) and
	// create it again, with a new ID and a fresh log.
	e.m.Close()
	if _, err := e.meta.DeleteTopic(testTopic); err != nil {
		t.Fatal(err)
	}
	if err := e.meta.CreateTopic(metadata.Topic{Name: testTopic, Partitions: 1, Configs: map[string]string{"retention.ms": "-1"}}); err != nil {
		t.Fatal(err)
	}
	cur, err := e.meta.Topic(testTopic)
	if err != nil {
		t.Fatal(err)
	}
	e.log.Close()
	l, err := localstore.Open(filepath.Join(e.dir, "logs2", testTopic+"-0"), localstore.Config{SegmentBytes: 1 << 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.log, e.pl.Log, e.pl.TopicID, e.appended = l, l, cur.ID, nil
	e.clock.Advance(time.Second)
	e.open()
	e.segment(2, 10)
	e.manage()
	now := e.remote()
	if len(now) != 1 || now[0].BaseOffset != 0 {
		t.Fatalf("new topic: %+v", now)
	}
	wait.Eventually(t, "the new topic's manifest", func() bool {
		for _, k := range e.manifestKeys() {
			if strings.Contains(k, topicIDHex(cur.ID)) {
				return true
			}
		}
		return false
	})
	fresh, rep := recoverFresh(t, e)
	got, err := fresh.Topic(testTopic)
	if err != nil || got.ID != cur.ID {
		t.Fatalf("recovered topic %+v %v, want ID %x", got, err, cur.ID)
	}
	segs, err := fresh.RemoteSegments(testTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].UploadID != now[0].UploadID {
		t.Fatalf("recovered %+v, want only the new topic's segment %s", segs, now[0].UploadID)
	}
	if len(rep.LeftAlone) != 3 || rep.Topics[0].LeftAlone != 3 {
		t.Fatalf("left alone %v, topics %+v", rep.LeftAlone, rep.Topics)
	}
}

// A topic without a manifest (tiered before manifests existed) is restored
// with remote deletion off, and the report says so.
func TestRecoverWithoutManifestTurnsDeletionOff(t *testing.T) {
	e := newEnv(t, nil)
	for range 2 {
		e.segment(2, 10)
	}
	e.manage()
	wait.Eventually(t, "the manifest", func() bool { return len(e.manifestKeys()) > 0 })
	e.m.Close()
	for _, k := range e.manifestKeys() {
		if err := e.mem.Delete(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	fresh, rep := recoverFresh(t, e)
	got, err := fresh.Topic(testTopic)
	if err != nil || got.Configs["retention.ms"] != "-1" || got.Configs["retention.bytes"] != "-1" || len(got.Configs) != 2 {
		t.Fatalf("restored without a manifest: %+v %v", got, err)
	}
	orig, _ := e.meta.Topic(testTopic)
	if len(rep.Topics) != 1 || rep.Topics[0].Source != SourceNone || rep.Topics[0].Segments != 2 || got.ID != orig.ID {
		t.Fatalf("report %+v (the sidecars name ID %x)", rep.Topics, orig.ID)
	}
}

// Recover into the metadata store that still has the topic keeps it, with
// its committed offsets.
func TestRecoverKeepsTopicAndOffsetsOfTheMetadataStore(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(2, 10)
	e.manage()
	if err := e.meta.CommitOffsets("g", []metadata.OffsetCommit{{Topic: testTopic, Partition: 0, Offset: 7}}); err != nil {
		t.Fatal(err)
	}
	orig, _ := e.meta.Topic(testTopic)
	e.m.Close()
	rep, err := Recover(context.Background(), e.mem, e.meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := e.meta.Topic(testTopic)
	if got.ID != orig.ID || len(rep.Topics) != 1 || rep.Topics[0].Source != SourceMetadata || rep.Topics[0].CommittedOffsets != 1 || rep.Topics[0].Created {
		t.Fatalf("topic %+v, report %+v", got, rep.Topics)
	}
}
