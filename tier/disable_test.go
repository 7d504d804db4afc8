package tier

import (
	"context"
	"errors"
	"github.com/stratalog/strata/internal/wait"
	"testing"
)

// remote.log.copy.disable: the round uploads nothing and counts no copy lag;
// set back, it uploads.
func TestCopyDisabledUploadsNothing(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.manage()
	if len(e.remote()) != 1 {
		t.Fatalf("remote = %+v", e.remote())
	}
	e.pl.CopyDisabled = true
	e.segment(3, 10)
	e.manage()
	if n := len(e.remote()); n != 1 {
		t.Fatalf("%d remote segments with copy disabled, want 1", n)
	}
	if st := e.m.Status(testTopic); len(st) != 1 || st[0].CopyLagSegments != 0 {
		t.Fatalf("status with copy disabled: %+v", st)
	}
	e.pl.CopyDisabled = false
	e.manage()
	if n := len(e.remote()); n != 2 {
		t.Fatalf("%d remote segments once copy is enabled again, want 2", n)
	}
}

// DropRemote (KIP-950 disablement): the view goes with the commit, a stale
// Manage still saying Remote does not tier, Recover does not attach the
// segments pending their purge, the purge keeps the manifests, and after
// ResumeRemote the topic tiers afresh.
func TestDropRemote(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.segment(3, 10)
	e.manage()
	wait.Eventually(t, "the topic's manifest", func() bool { return len(e.manifestKeys()) > 0 })
	if len(e.keys()) != 4 {
		t.Fatal(e.keys())
	}
	// A failed commit changes nothing.
	if err := e.m.DropRemote(testTopic, e.pl.TopicID, func() error { return errors.New("no") }); err == nil {
		t.Fatal("the commit's error was lost")
	}
	if _, ok := e.m.LogStartOffset(testTopic, 0); !ok {
		t.Fatal("a failed commit dropped the view")
	}
	e.segment(3, 10)
	e.manage()
	if len(e.remote()) != 3 {
		t.Fatalf("a failed DropRemote stopped tiering: %+v", e.remote())
	}

	start := e.log.LogStartOffset()
	var d struct{ ok bool }
	err := e.m.DropRemote(testTopic, e.pl.TopicID, func() error {
		del, ok, err := e.meta.DisableRemoteStorage(testTopic, map[string]string{"remote.storage.enable": "false"}, map[int32]int64{0: start})
		d.ok = ok && del.RemoteOnly
		return err
	})
	if err != nil || !d.ok {
		t.Fatalf("DropRemote: %v %v", err, d.ok)
	}
	if _, ok := e.m.LogStartOffset(testTopic, 0); ok {
		t.Fatal("the remote view survived")
	}
	e.segment(3, 10)
	e.manage() // e.pl still says Remote: a description older than the disablement
	if n := len(e.remote()); n != 0 {
		t.Fatalf("a stale Manage uploaded %d segments", n)
	}
	if len(e.keys()) != 6 {
		t.Fatalf("DropRemote deleted objects: %v", e.keys())
	}
	dels, err := e.meta.TopicDeletions()
	if err != nil || len(dels) != 1 {
		t.Fatalf("deletions %+v %v", dels, err)
	}

	e.m.Close()
	rep, err := Recover(context.Background(), e.store, e.meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Segments != 0 || len(e.remote()) != 0 {
		t.Fatalf("recover attached %d segments pending their purge: %+v", rep.Segments, rep)
	}
	e.open()
	before := e.manifestKeys()
	if err := e.m.PurgeTopic(context.Background(), dels[0]); err != nil {
		t.Fatal(err)
	}
	if len(e.keys()) != 0 {
		t.Fatalf("objects left: %v", e.keys())
	}
	after := map[string]bool{}
	for _, k := range e.manifestKeys() {
		after[k] = true
	}
	for _, k := range before {
		if !after[k] {
			t.Fatalf("the purge of a live topic's remote data deleted its manifest %s", k)
		}
	}

	// Tiering again (a fresh manager has no memory of the disablement, as
	// after a restart; ResumeRemote is what the broker calls on a running one).
	e.m.ResumeRemote(e.pl.TopicID)
	e.manage()
	if n := len(e.remote()); n != 4 {
		t.Fatalf("%d remote segments after re-enabling, want every closed local one (4)", n)
	}
}
