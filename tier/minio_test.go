package tier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/s3"
)

// TestMinIO runs the core scenario against a real MinIO through the s3
// backend, and checks what is in the bucket with minio-go: upload in order
// with the documented keys and byte-identical .log objects, local deletion,
// remote reads, an outage (uploads wait, reads fail cleanly, both resume),
// Recover on an empty metadata store, and Reconcile.
func TestMinIO(t *testing.T) {
	srv := minioserver.Start(t)
	bucket := srv.NewBucket(t)
	ctx := t.Context()
	s3store, err := s3.New(ctx, s3.Config{
		Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "cluster-a"
	store, err := remotestore.WithPrefix(s3store, prefix)
	if err != nil {
		t.Fatal(err)
	}
	client, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	getObject := func(key string) []byte {
		t.Helper()
		obj, err := client.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		b, err := io.ReadAll(obj)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	e := newEnv(t, func(c *Config) { c.FetchMaxWait = 10 * time.Second })
	e.store = store
	e.open()
	e.ret.LocalRetentionBytes = 0
	for range 3 {
		e.segment(6, 10)
	}
	e.active(5)
	var localFiles [][]byte
	for _, s := range e.log.Segments()[:3] {
		localFiles = append(localFiles, readFile(t, s.LogPath))
	}
	e.manage()

	segs := e.remote()
	if len(segs) != 3 {
		t.Fatalf("index %+v", segs)
	}
	var want []string
	for _, s := range segs {
		want = append(want, prefix+"/"+logKey(testTopic, 0, s.BaseOffset, s.UploadID),
			prefix+"/"+sidecarKey(testTopic, 0, s.BaseOffset, s.UploadID))
	}
	slices.Sort(want)
	keys, err := segmentKeys(ctx, srv, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("bucket holds %v, want %v", keys, want)
	}
	for i, s := range segs {
		if !bytes.Equal(getObject(prefix+"/"+logKey(testTopic, 0, s.BaseOffset, s.UploadID)), localFiles[i]) {
			t.Errorf("segment %d: the object in MinIO differs from the local file", i)
		}
		if _, err := decodeSidecar(getObject(prefix + "/" + sidecarKey(testTopic, 0, s.BaseOffset, s.UploadID))); err != nil {
			t.Errorf("segment %d: %v", i, err)
		}
	}
	if e.log.LogStartOffset() != 180 {
		t.Fatalf("local log start %d", e.log.LogStartOffset())
	}
	if got := e.readAll(0, 180, 4096); !bytes.Equal(got, e.bytesBetween(0, 180)) {
		t.Fatal("remote reads differ from what was appended")
	}

	// Outage.
	e.open() // cold caches
	srv.Stop()
	if _, err := e.m.Read(ctx, testTopic, 0, 0, 1<<20, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read with MinIO down: %v", err)
	}
	e.segment(6, 10) // 185..244
	e.manage()
	if n := len(e.remote()); n != 3 {
		t.Fatalf("%d entries with MinIO down", n)
	}
	if v := gauge(t, e.reg, "strata_tier_copy_lag_segments"); v != 1 {
		t.Errorf("copy lag %v", v)
	}
	if len(e.log.Segments()) != 2 {
		t.Errorf("the segment waiting for upload was deleted locally")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	e.manage()
	if segs = e.remote(); len(segs) != 4 || segs[3].State != metadata.CopyFinished {
		t.Fatalf("after the outage: %+v", segs)
	}
	if got := e.readAll(0, 245, 1<<20); !bytes.Equal(got, e.bytesBetween(0, 245)) {
		t.Fatal("remote reads after the outage differ")
	}
	keys, err = segmentKeys(ctx, srv, bucket)
	if err != nil || len(keys) != 8 {
		t.Fatalf("bucket after the outage: %v %v", keys, err)
	}
	e.m.Close()

	// Recover from the bucket alone.
	fresh, err := metadata.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	rep, err := Recover(ctx, store, fresh, nil)
	if err != nil || rep.Segments != 4 || len(rep.Orphans) != 0 {
		t.Fatalf("recover: %+v %v", rep, err)
	}
	got, err := fresh.RemoteSegments(testTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range segs {
		g, w := got[i], segs[i]
		if g.BaseOffset != w.BaseOffset || g.EndOffset != w.EndOffset || g.UploadID != w.UploadID || g.CRC32C != w.CRC32C || g.Size != w.Size {
			t.Errorf("recovered %+v, want %+v", g, w)
		}
	}

	// Reconcile: an orphan goes, owned objects and foreign keys stay.
	orphan := prefix + "/" + logKey(testTopic, 0, 0, newUploadID())
	for _, k := range []string{orphan, "other-app/data.bin"} {
		if _, err := client.PutObject(ctx, bucket, k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deleted, err := Reconcile(ctx, store, fresh, 0, false)
	if err != nil || !slices.Equal(deleted, []string{strings.TrimPrefix(orphan, prefix+"/")}) {
		t.Fatalf("reconcile deleted %v, %v", deleted, err)
	}
	keys, err = segmentKeys(ctx, srv, bucket)
	if err != nil || len(keys) != 9 || slices.Contains(keys, orphan) {
		t.Fatalf("bucket after reconcile: %v %v", keys, err)
	}
}

// segmentKeys lists the bucket's keys except the topic manifests, which the
// manager writes in the background.
func segmentKeys(ctx context.Context, srv *minioserver.Server, bucket string) ([]string, error) {
	keys, err := srv.ObjectKeys(ctx, bucket, "")
	return slices.DeleteFunc(keys, func(k string) bool { return strings.Contains(k, "/"+manifestRoot) }), err
}
