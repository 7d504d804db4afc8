package s3_test

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
	"github.com/stratalog/strata/remotestore/s3"
	"github.com/stratalog/strata/remotestore/storetest"
)

// requestLog is an Observer that remembers operation names.
type requestLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *requestLog) ObserveRequest(op string, status int, took time.Duration, err error) {
	l.mu.Lock()
	l.ops = append(l.ops, op)
	l.mu.Unlock()
}

func (l *requestLog) count(op string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.ops {
		if o == op {
			n++
		}
	}
	return n
}

func newStore(t *testing.T, srv *minioserver.Server, bucket string, obs s3.Observer) *s3.Store {
	t.Helper()
	s, err := s3.New(t.Context(), s3.Config{
		Bucket:             bucket,
		Endpoint:           srv.Endpoint,
		PathStyle:          true,
		AccessKey:          srv.AccessKey,
		SecretKey:          srv.SecretKey,
		PartSize:           storetest.PartSize,
		MultipartThreshold: 8 << 20,
		Concurrency:        2,
		Observer:           obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAcceptanceMinIO(t *testing.T) {
	srv := minioserver.Start(t)
	storetest.Run(t, func(t *testing.T) remotestore.Store {
		return newStore(t, srv, srv.NewBucket(t), nil)
	})
}

func TestMultipartAndObserver(t *testing.T) {
	srv := minioserver.Start(t)
	bucket := srv.NewBucket(t)
	log := &requestLog{}
	s := newStore(t, srv, bucket, log)
	ctx := t.Context()
	data := storetest.Data(9, 12<<20)
	storetest.MustPut(t, ctx, s, "big", data)
	storetest.MustPut(t, ctx, s, "small", data[:1000])
	storetest.MustGet(t, ctx, s, "big", 0, 10)
	if _, err := s.Head(ctx, "small"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "small"); err != nil {
		t.Fatal(err)
	}
	if _, err := storetest.Keys(ctx, s, ""); err != nil {
		t.Fatal(err)
	}
	for op, want := range map[string]int{
		"CreateMultipartUpload": 1, "UploadPart": 3, "CompleteMultipartUpload": 1,
		"PutObject": 1, "GetObject": 1, "HeadObject": 1, "DeleteObject": 1, "ListObjectsV2": 1,
	} {
		if got := log.count(op); got != want {
			t.Errorf("observer saw %d %s requests, want %d", got, op, want)
		}
	}
	keys, err := srv.ObjectKeys(ctx, bucket, "")
	if err != nil || !slices.Equal(keys, []string{"big"}) {
		t.Fatalf("bucket holds %q, %v", keys, err)
	}
}

// A multipart upload that fails part-way is aborted: no object and no
// incomplete upload remain.
func TestFailedMultipartIsAborted(t *testing.T) {
	srv := minioserver.Start(t)
	bucket := srv.NewBucket(t)
	s := newStore(t, srv, bucket, nil)
	ctx := t.Context()
	data := storetest.Data(10, 12<<20)
	// The reader ends after 7 MiB of the 12 promised: part 2 cannot be read.
	err := s.Put(ctx, "broken", bytes.NewReader(data[:7<<20]), int64(len(data)))
	if err == nil {
		t.Fatal("Put from a short reader succeeded")
	}
	if _, err := s.Head(ctx, "broken"); !remotestore.IsNotFound(err) {
		t.Fatalf("Head after a failed multipart Put: %v", err)
	}
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("incomplete upload left: key %q id %s", u.Key, u.UploadID)
	}
}

func TestErrors(t *testing.T) {
	srv := minioserver.Start(t)
	ctx := t.Context()
	missing := newStore(t, srv, "no-such-bucket-here", nil)
	_, err := storetest.Get(ctx, missing, "k", 0, -1)
	if err == nil || remotestore.IsNotFound(err) || !remotestore.IsPermanent(err) {
		t.Errorf("GetRange in a missing bucket: %v; want a permanent error that is not ErrNotFound", err)
	}
	bad, err := s3.New(ctx, s3.Config{Bucket: srv.NewBucket(t), Endpoint: srv.Endpoint, PathStyle: true, AccessKey: "nobody", SecretKey: "wrong-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Put(ctx, "k", bytes.NewReader([]byte("x")), 1); err == nil || !remotestore.IsPermanent(err) {
		t.Errorf("Put with bad credentials: %v; want a permanent error", err)
	}
	for _, cfg := range []s3.Config{
		{},
		{Bucket: "b", PartSize: 1 << 20},
		{Bucket: "b", AccessKey: "only-half"},
		{Bucket: "b", Endpoint: "127.0.0.1:9000"},
	} {
		if _, err := s3.New(ctx, cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// The store works again once MinIO comes back, and with retries an
// operation spanning a short outage succeeds.
func TestMinIODownThenBack(t *testing.T) {
	srv := minioserver.Start(t)
	bucket := srv.NewBucket(t)
	s := newStore(t, srv, bucket, nil)
	ctx := t.Context()
	storetest.MustPut(t, ctx, s, "before", []byte("x"))
	srv.Stop()
	if _, err := s.Head(ctx, "before"); err == nil || remotestore.IsNotFound(err) || remotestore.IsPermanent(err) {
		t.Fatalf("Head with MinIO down: %v; want a retryable error", err)
	}
	counted := faultstore.New(s) // no faults: it counts the attempts
	// About a minute of retries: a MinIO restart under load can take seconds.
	retrying := remotestore.WithRetries(counted, remotestore.RetryPolicy{MaxAttempts: 300, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- retrying.Put(ctx, "during", bytes.NewReader([]byte("y")), 1) }()
	wait.Eventually(t, "a Put attempt to fail and be retried", func() bool { return counted.Calls(remotestore.OpPut) >= 2 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Put across the outage: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Put across the outage did not finish")
	}
	keys, err := srv.ObjectKeys(ctx, bucket, "")
	if err != nil || !slices.Equal(keys, []string{"before", "during"}) {
		t.Fatalf("bucket holds %q, %v", keys, err)
	}
	if got := storetest.MustGet(t, ctx, s, "before", 0, -1); string(got) != "x" {
		t.Fatalf("got %q", got)
	}
}
