package s3

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Sizes and defaults of Config.
const (
	// MinPartSize is S3's smallest part of a multipart upload (but the last).
	MinPartSize = 5 << 20
	// MaxParts is S3's largest number of parts in one upload.
	MaxParts = 10000

	DefaultRegion = "us-east-1"
	// A segment below 128 MiB goes up in one PutObject, larger ones in 32 MiB
	// parts, two at a time: requests are what object stores bill per upload
	// (a 128 MiB segment costs 2 requests with its sidecar, a 1 GiB one 35),
	// and 64 MiB of part buffers per upload is what the memory allows.
	DefaultPartSize           = 32 << 20
	DefaultMultipartThreshold = 128 << 20
	DefaultConcurrency        = 2
	DefaultMaxAttempts        = 3
)

// Config configures a Store. Fill what you need and call New, which applies
// the defaults named beside each field and validates.
type Config struct {
	Bucket string
	// Endpoint is the base URL of an S3-compatible service, such as
	// "http://127.0.0.1:9000" for MinIO; empty for AWS.
	Endpoint string
	// Region of the bucket; empty: the AWS chain's (AWS_REGION, profile),
	// else us-east-1.
	Region string
	// PathStyle addresses buckets as endpoint/bucket rather than
	// bucket.endpoint, as MinIO and most S3-compatible stores want.
	PathStyle bool
	// AccessKey and SecretKey (and SessionToken) are static credentials;
	// when empty, the AWS default chain is used (environment, shared
	// files, web identity, instance role). Prefer the chain, or
	// SecretKeyFile, to a SecretKey written in a command line or config.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// SecretKeyFile and SessionTokenFile name files that hold the secret
	// key and the session token (a Docker or Kubernetes secret, say),
	// read once by New, surrounding white space trimmed. Each is an
	// alternative to its in-memory field and needs AccessKey.
	SecretKeyFile    string
	SessionTokenFile string
	// Profile picks a profile of the shared AWS files (default chain only).
	Profile string

	// MultipartThreshold: objects of this size or more upload in parts of
	// PartSize (defaults 128 MiB and 32 MiB; PartSize at least 5 MiB).
	MultipartThreshold int64
	PartSize           int64
	// Concurrency is the number of parts uploaded at once (default 2);
	// a multipart Put holds that many part buffers in memory.
	Concurrency int
	// MaxAttempts is the AWS SDK's attempts per HTTP request (default 3).
	// The SDK retries single requests, parts included; wrap the store
	// with remotestore.WithRetries to retry whole operations as well.
	MaxAttempts int
	// HTTPClient replaces the SDK's HTTP client (nil: the SDK default).
	HTTPClient *http.Client
	// Observer, if set, sees every HTTP request the SDK sends.
	Observer Observer
}

// Observer sees every HTTP request the SDK sends, retries and the parts of
// multipart uploads included. operation is the S3 API name (PutObject,
// UploadPart, GetObject, ...); status is the HTTP status, 0 when no response
// came (err says why). It must be safe for concurrent use.
type Observer interface {
	ObserveRequest(operation string, status int, took time.Duration, err error)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(operation string, status int, took time.Duration, err error)

// ObserveRequest calls f.
func (f ObserverFunc) ObserveRequest(operation string, status int, took time.Duration, err error) {
	f(operation, status, took, err)
}

// String prints c with the secret key and the session token hidden, so a
// Config may be logged or printed (%v, %+v, %#v).
func (c Config) String() string {
	type plain Config // no methods: no recursion
	p := plain(c)
	if p.SecretKey != "" {
		p.SecretKey = "xxxxx"
	}
	if p.SessionToken != "" {
		p.SessionToken = "xxxxx"
	}
	return fmt.Sprintf("s3.Config%+v", p)
}

// GoString is String.
func (c Config) GoString() string { return c.String() }

// maxSecretFile bounds what readSecretFile reads: a key is tens of bytes, a
// session token a few KiB.
const maxSecretFile = 64 << 10

// readSecretFile reads a secret from path; param names it in errors (the
// URL parameter, secret_key_file or session_token_file).
func readSecretFile(param, path string) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("remotestore/s3: %s %q: %s", param, path, fmt.Sprintf(format, args...))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail("cannot read it: %v", err)
	}
	if fi.IsDir() {
		return fail("is a directory, not a file")
	}
	if !fi.Mode().IsRegular() {
		return fail("is not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return fail("cannot read it: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return fail("cannot read it: %v", err)
	}
	if len(b) > maxSecretFile {
		return fail("is larger than %d bytes: not a secret", maxSecretFile)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return fail("is empty")
	}
	return v, nil
}

// withDefaults returns c with the zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = DefaultMultipartThreshold
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	return c
}

// Validate reports the first problem of c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Bucket == "":
		return errors.New("remotestore/s3: no bucket")
	case c.PartSize < MinPartSize:
		return fmt.Errorf("remotestore/s3: part size %d is below S3's minimum of %d", c.PartSize, MinPartSize)
	case c.MultipartThreshold < 1:
		return fmt.Errorf("remotestore/s3: multipart threshold %d must be positive", c.MultipartThreshold)
	case c.Concurrency < 1:
		return fmt.Errorf("remotestore/s3: concurrency %d must be positive", c.Concurrency)
	case c.MaxAttempts < 1:
		return fmt.Errorf("remotestore/s3: max attempts %d must be positive", c.MaxAttempts)
	case c.SecretKey != "" && c.SecretKeyFile != "":
		return errors.New("remotestore/s3: give the secret key or a secret key file (secret_key_file), not both")
	case c.SessionToken != "" && c.SessionTokenFile != "":
		return errors.New("remotestore/s3: give the session token or a session token file (session_token_file), not both")
	case (c.AccessKey == "") != (c.SecretKey == "" && c.SecretKeyFile == ""):
		return errors.New("remotestore/s3: give both access key and secret key (or secret_key_file), or neither")
	case c.AccessKey == "" && (c.SessionToken != "" || c.SessionTokenFile != ""):
		return errors.New("remotestore/s3: a session token needs an access key and a secret key")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			// Not quoted: it may hold a password.
			return errors.New("remotestore/s3: the endpoint is not an http(s) URL")
		case u.User != nil:
			return errors.New("remotestore/s3: the endpoint carries a user name or password: give the credentials as access key and secret key (file), or by the AWS chain")
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return fmt.Errorf("remotestore/s3: endpoint %q is not an http(s) URL", c.Endpoint)
		}
	}
	return nil
}
