package bench

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// countingProxy stands between the broker and MinIO and counts the requests
// by S3 operation, from the HTTP method and query alone: the object store's
// own count, independent of the broker's strata_s3_requests_total. The Host
// header is passed through unchanged, so SigV4 signatures still verify.
type countingProxy struct {
	srv  *http.Server
	addr string
	mu   struct {
		sync.Mutex
		counts map[string]int64
	}
}

func startCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{addr: l.Addr().String()}
	p.mu.counts = map[string]int64{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s3Operation(r)
		p.mu.Lock()
		p.mu.counts[op]++
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l)
	return p, nil
}

func (p *countingProxy) counts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.mu.counts))
	for k, v := range p.mu.counts {
		out[k] = v
	}
	return out
}

func (p *countingProxy) close() { p.srv.Close() }

// s3Operation names the S3 API call of a path-style request.
func s3Operation(r *http.Request) string {
	q := r.URL.Query()
	path := strings.Trim(r.URL.Path, "/")
	hasKey := strings.Contains(path, "/")
	has := func(k string) bool { _, ok := q[k]; return ok }
	switch r.Method {
	case http.MethodHead:
		if hasKey {
			return "HeadObject"
		}
		return "HeadBucket"
	case http.MethodGet:
		switch {
		case q.Get("list-type") == "2":
			return "ListObjectsV2"
		case has("location"):
			return "GetBucketLocation"
		case !hasKey:
			return "ListObjects"
		}
		return "GetObject"
	case http.MethodPut:
		switch {
		case has("partNumber") && has("uploadId"):
			return "UploadPart"
		case hasKey:
			return "PutObject"
		}
		return "CreateBucket"
	case http.MethodPost:
		switch {
		case has("uploads"):
			return "CreateMultipartUpload"
		case has("uploadId"):
			return "CompleteMultipartUpload"
		case has("delete"):
			return "DeleteObjects"
		}
		return "Post"
	case http.MethodDelete:
		if has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return r.Method
}
