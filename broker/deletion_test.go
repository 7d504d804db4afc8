package broker

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/wait"
)

// A topic deleted while the object store is down is gone at once; its
// remote objects are deleted once the store is back, after a broker restart
// in between too; and a topic re-created under its name reads none of it.
func TestDeleteTopicWhileStoreIsDown(t *testing.T) {
	const topic = "doomed"
	mio, bucket, tb, prod := tieredOnMinIO(t, "del", topic)
	oldID := tb.srv.topics.get(topic).id
	ctx := ctxT(t, 2*time.Minute)
	keys, err := mio.ObjectKeys(ctx, bucket, "")
	if err != nil || len(keys) == 0 {
		t.Fatalf("bucket before the deletion: %v %v", keys, err)
	}

	mio.Stop()
	resp, err := tb.admin().DeleteTopics(ctx, topic)
	if err != nil || resp[topic].Err != nil {
		t.Fatalf("DeleteTopics with the store down: %v %v", err, resp[topic].Err)
	}
	if tb.srv.topics.get(topic) != nil {
		t.Fatal("the topic is still there")
	}
	pending := func() []DeletionStatus {
		dels, err := tb.srv.PendingDeletions()
		if err != nil {
			t.Fatal(err)
		}
		return dels
	}
	wait.For(t, 2*time.Minute, "a failed cleanup reported", func() bool {
		d := pending()
		return len(d) == 1 && d[0].LastError != "" && d[0].RemoteSegments > 0
	})

	// The name is free at once; the new topic has a new ID and reads only
	// its own records, though the old remote segments are still in the
	// index of the deletion and in the bucket.
	tb.createTopic(topic, 2, nil)
	if id := tb.srv.topics.get(topic).id; id == oldID {
		t.Fatal("the re-created topic has the old ID")
	}
	fresh := recordsFor(topic, 20, 2)
	for _, r := range fresh {
		r.Value = append([]byte("new-"), r.Value...)
	}
	prod.Close() // it knows the old topic ID
	prod = tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	produceSync(t, prod, fresh...)
	cons := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, cons, len(fresh), 30*time.Second)
	for _, r := range got {
		if !strings.HasPrefix(string(r.Value), "new-") {
			t.Fatalf("the re-created topic read %q at %d/%d", r.Value, r.Partition, r.Offset)
		}
	}
	cons.Close()

	// A restart with the store still down keeps the deletion pending.
	tb.restart()
	if d := pending(); len(d) != 1 || d[0].RemoteSegments == 0 {
		t.Fatalf("after a restart: %+v", d)
	}
	if err := mio.Restart(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Minute, "the cleanup to finish", func() bool { return len(pending()) == 0 })
	// Every object left belongs to the new topic's index.
	keys, err = mio.ObjectKeys(ctx, bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	owned := map[string]bool{}
	for _, st := range tb.mgr.Status(topic) {
		for _, r := range st.Remote {
			owned["del/"+r.LogKey], owned["del/"+r.SidecarKey] = true, true
		}
	}
	oldManifests := "del/manifests/" + topic + "/" + hex.EncodeToString(oldID[:]) + "/"
	for _, k := range keys {
		if strings.HasPrefix(k, "del/manifests/") && !strings.HasPrefix(k, oldManifests) {
			continue // the new topic's
		}
		if !owned[k] {
			t.Errorf("object %s of the deleted topic is still in the bucket", k)
		}
	}
	if ps, err := tb.srv.meta.DeletedPartitions(oldID); err != nil || len(ps) != 0 {
		t.Fatalf("segments left under the deletion: %v %v", ps, err)
	}
}
