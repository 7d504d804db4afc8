package backend_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/backend"
	"github.com/stratalog/strata/remotestore/storetest"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want backend.Location
	}{
		{"mem://", backend.Location{Scheme: "mem"}},
		{"mem:", backend.Location{Scheme: "mem"}},
		{"file:///var/lib/strata/tier", backend.Location{Scheme: "file", Dir: "/var/lib/strata/tier"}},
		{"file://localhost/srv/x/", backend.Location{Scheme: "file", Dir: "/srv/x"}},
		{"file://./data/tier", backend.Location{Scheme: "file", Dir: "data/tier"}},
		{"file:data/tier", backend.Location{Scheme: "file", Dir: "data/tier"}},
	} {
		got, err := backend.ParseURL(tc.url)
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.url, got, err, tc.want)
		}
	}

	loc, err := backend.ParseURL("s3://my-bucket/a/b/?endpoint=http://127.0.0.1:9000&region=eu-west-1&access_key=AK&secret_key=SK&part_size=8MiB&multipart_threshold=32MiB&concurrency=2&max_attempts=5")
	if err != nil {
		t.Fatal(err)
	}
	c := loc.S3
	if loc.Prefix != "a/b" || c.Bucket != "my-bucket" || c.Endpoint != "http://127.0.0.1:9000" || c.Region != "eu-west-1" ||
		!c.PathStyle || c.AccessKey != "AK" || c.SecretKey != "SK" || c.PartSize != 8<<20 ||
		c.MultipartThreshold != 32<<20 || c.Concurrency != 2 || c.MaxAttempts != 5 {
		t.Errorf("ParseURL(s3) = %+v", loc)
	}
	loc, err = backend.ParseURL("s3://aws-bucket")
	if err != nil || loc.S3.PathStyle || loc.Prefix != "" || loc.S3.AccessKey != "" {
		t.Errorf("ParseURL(s3://aws-bucket) = %+v, %v; want virtual-host style, AWS chain", loc, err)
	}
	loc, err = backend.ParseURL("s3://b12/p?endpoint=http://127.0.0.1:9000&path_style=false")
	if err != nil || loc.S3.PathStyle {
		t.Errorf("path_style=false ignored: %+v, %v", loc, err)
	}
}

func TestParseURLErrors(t *testing.T) {
	const secret = "TOPSECRET"
	for _, tc := range []struct{ url, wantInErr string }{
		{"", "no scheme"},
		{"/tmp/x", "no scheme"},
		{"gs://bucket", `unknown scheme "gs"`},
		{"mem://name", "mem://"},
		{"file://otherhost/x", "otherhost"},
		{"file:///", "root directory"},
		{"file:///x?sync=1", "no parameters"},
		{"s3://", "no bucket"},
		{"s3://B_ad", "bucket"},
		{"s3://bucket/a/../b", "prefix"},
		{"s3://bucket?endpoit=http://x", `unknown parameter "endpoit"`},
		{"s3://bucket?endpoint=127.0.0.1:9000", "endpoint"},
		{"s3://bucket?path_style=maybe", "path_style"},
		{"s3://bucket?part_size=1MiB", "part size"},
		{"s3://bucket?part_size=lots", "part_size"},
		{"s3://bucket?access_key=AK", "both access key and secret key"},
		{"s3://bucket?secret_key=" + secret, "both access key and secret key"},
		{"s3://bucket?access_key=AK&secret_key=" + secret + "&region=a&region=b", "given 2 times"},
		{"s3://AK:" + secret + "@bucket?nope=1", "unknown parameter"},
	} {
		_, err := backend.ParseURL(tc.url)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantInErr) {
			t.Errorf("ParseURL(%q): %v; want it to mention %q", tc.url, err, tc.wantInErr)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURL(%q) error shows the secret: %v", tc.url, err)
		}
	}
	if r := backend.Redact("s3://AK:" + secret + "@b?secret_key=" + secret + "&session_token=" + secret); strings.Contains(r, secret) {
		t.Errorf("Redact left the secret: %s", r)
	}
}

func TestOpenMemAndFile(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T) remotestore.Store {
		s, err := backend.Open(t.Context(), "mem://", backend.Options{Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	s, err := backend.Open(t.Context(), "file://"+filepath.ToSlash(dir), backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustPut(t, t.Context(), s, "a/b", []byte("x"))
	if _, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil {
		t.Fatalf("file:// store did not write under its directory: %v", err)
	}
}

func TestOpenS3(t *testing.T) {
	srv := minioserver.Start(t)
	ctx := t.Context()
	bucket := srv.NewBucket(t)
	reg := prometheus.NewRegistry()
	url := "s3://" + bucket + "/cluster/one?endpoint=" + srv.Endpoint + "&access_key=" + srv.AccessKey + "&secret_key=" + srv.SecretKey +
		"&part_size=5MiB&multipart_threshold=6MiB"
	s, err := backend.Open(ctx, url, backend.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustPut(t, ctx, s, "t/0/seg.log", storetest.Data(1, 7<<20))
	storetest.MustPut(t, ctx, s, "t/0/seg.idx", []byte("idx"))
	keys, err := srv.ObjectKeys(ctx, bucket, "")
	if err != nil || !slices.Equal(keys, []string{"cluster/one/t/0/seg.idx", "cluster/one/t/0/seg.log"}) {
		t.Fatalf("bucket holds %q, %v", keys, err)
	}
	got, err := storetest.Keys(ctx, s, "t/")
	if err != nil || !slices.Equal(got, []string{"t/0/seg.idx", "t/0/seg.log"}) {
		t.Fatalf("List = %q, %v", got, err)
	}
	// Both metric families are fed.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "strata_s3_requests_total" || mf.GetName() == "strata_remote_store_operations_total" {
				counts[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	for k, want := range map[string]float64{
		"strata_s3_requests_total/UploadPart":       2,
		"strata_s3_requests_total/PutObject":        1,
		"strata_s3_requests_total/ListObjectsV2":    1,
		"strata_remote_store_operations_total/put":  2,
		"strata_remote_store_operations_total/list": 1,
	} {
		if counts[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, counts[k], want, counts)
		}
	}
}

// Open puts the timeouts and the health inside the retries: against an
// endpoint that accepts connections and never answers (a stopped store),
// every attempt ends with a timeout naming the store (secret redacted) and
// the health hears it.
func TestOpenTimeoutsAndHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	const secret = "TOPSECRET"
	rawURL := "s3://hung-bucket/p?endpoint=http://" + ln.Addr().String() + "&access_key=AK&secret_key=" + secret + "&max_attempts=1"
	health := remotestore.NewHealth(backend.Redact(rawURL))
	var attempts atomic.Int32
	s, err := backend.Open(t.Context(), rawURL, backend.Options{
		Timeouts: remotestore.Timeouts{Request: 100 * time.Millisecond, Stall: 100 * time.Millisecond},
		Health:   health,
		Retry: remotestore.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
			OnRetry: func(string, int, error) { attempts.Add(1) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Head(t.Context(), "k")
	if !errors.Is(err, remotestore.ErrTimeout) || !strings.Contains(err.Error(), "hung-bucket") || !strings.Contains(err.Error(), "head") {
		t.Fatalf("head against a hung endpoint: %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the secret: %v", err)
	}
	if n := attempts.Load(); n != 2 {
		t.Errorf("%d retries, want 2 (3 attempts)", n)
	}
	if st := health.State(); st.Available || !errors.Is(st.Err, remotestore.ErrTimeout) || strings.Contains(st.Name, secret) {
		t.Errorf("health %+v", st)
	}
	err = s.Put(t.Context(), "k", strings.NewReader("abc"), 3)
	if !errors.Is(err, remotestore.ErrTimeout) || !strings.Contains(err.Error(), "put") {
		t.Fatalf("put against a hung endpoint: %v", err)
	}
}
