// Package backend opens a remotestore.Store from a URL, with the prefix,
// retry and metrics decorators applied. It links every backend; a binary that
// needs only one can call that backend's New directly.
//
// URL forms:
//
//	s3://BUCKET[/PREFIX][?PARAMS]   AWS S3, MinIO or any S3-compatible store
//	file:///ABS/PATH                a local directory (created if missing)
//	file://./REL/PATH, file:REL     a directory relative to the working directory
//	mem://                          a fresh in-memory store (tests)
//
// s3 parameters: endpoint (http(s) URL of an S3-compatible service, without
// user or password), region, path_style (true/false; default true when
// endpoint is set), access_key with secret_key or secret_key_file (a file
// holding the secret, read at Open, white space trimmed), session_token or
// session_token_file, profile, part_size, multipart_threshold (bytes, or with
// a KiB/MiB/GiB suffix), concurrency, max_attempts. Unknown parameters are
// errors. Without access_key, the AWS default chain gives the credentials:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, the shared
// credentials file (profile picks a profile), web identity, instance role.
//
// Prefer the chain or secret_key_file to secret_key (or s3://KEY:SECRET@):
// a URL given on a command line is visible in ps. For example, MinIO on
// loopback:
//
//	s3://strata/cluster-1?endpoint=http://127.0.0.1:9000&access_key=minioadmin&secret_key_file=/run/secrets/minio
//
// Errors and Redact show the URL with its secrets replaced by "xxxxx": a
// userinfo password, secret_key, session_token, the value of any parameter
// not known to be public (a mistyped secret_key=), and the fragment.
package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/fs"
	"github.com/stratalog/strata/remotestore/mem"
	"github.com/stratalog/strata/remotestore/s3"
)

// Options configure Open. The zero value opens the bare backend with the
// default retry policy and no metrics.
type Options struct {
	// Registerer, if set, gets the store's metrics (WithMetrics) and, for
	// s3, the per-request metrics (s3.NewRequestMetrics).
	Registerer prometheus.Registerer
	// Retry is the policy of WithRetries (zero: remotestore defaults).
	Retry remotestore.RetryPolicy
	// NoRetry leaves WithRetries out.
	NoRetry bool
	// Timeouts bound each attempt (WithTimeouts, inside the retries); zero:
	// no bound. An empty Name is filled with the redacted URL.
	Timeouts remotestore.Timeouts
	// Health, if set, hears the outcome of every attempt (WithHealth, inside
	// the retries), so a hung store shows at its first timeout.
	Health *remotestore.Health
	// S3 is the base configuration of s3 URLs (HTTP client, observer, part
	// sizes, ...); what the URL sets takes precedence.
	S3 s3.Config
}

// Location is a parsed store URL.
type Location struct {
	Scheme string    // "s3", "file" or "mem"
	Dir    string    // file: the directory
	Prefix string    // s3: the key prefix (no leading or trailing '/')
	S3     s3.Config // s3: what the URL sets
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// publicParams are the query parameters whose values Redact keeps; every
// other value (secret_key, session_token, and any unknown or mistyped
// parameter, which may be a secret) is replaced.
var publicParams = map[string]bool{
	"endpoint": true, "region": true, "path_style": true, "access_key": true, "profile": true,
	"secret_key_file": true, "session_token_file": true,
	"part_size": true, "multipart_threshold": true, "concurrency": true, "max_attempts": true,
}

// secretParams are the parameters that carry a secret in the URL itself.
var secretParams = []string{"secret_key", "session_token"}

// redacted replaces a secret in Redact's output.
const redacted = "xxxxx"

// plainName is a parameter name an error may quote: a mistyped name is
// shown, a secret pasted without "name=" is not.
var plainName = regexp.MustCompile(`^[A-Za-z][A-Za-z_-]{0,31}$`)

// Redact returns rawURL with its secrets replaced by "xxxxx", for logs and
// errors: any userinfo password (of the URL or of its endpoint), the values
// of secret_key, session_token and of every parameter not known to be
// public, parameter names that do not look like names, and the fragment.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = redacted, ""
	}
	if u.RawQuery != "" {
		// Pair by pair, so what is kept reads as it was written.
		var out []string
		for pair := range strings.SplitSeq(u.RawQuery, "&") {
			if pair == "" {
				continue
			}
			rawName, rawVal, _ := strings.Cut(pair, "=")
			name, err := url.QueryUnescape(rawName)
			val, verr := url.QueryUnescape(rawVal)
			switch {
			case err != nil || !plainName.MatchString(name):
				out = append(out, redacted+"="+redacted)
			case !publicParams[name] || verr != nil || strings.Contains(rawVal, ";"):
				out = append(out, rawName+"="+redacted)
			case name == "endpoint" && redactUserinfo(val) != val:
				out = append(out, rawName+"="+url.QueryEscape(redactUserinfo(val)))
			default:
				out = append(out, pair)
			}
		}
		u.RawQuery = strings.Join(out, "&")
	}
	return u.String()
}

// redactUserinfo hides the password of an endpoint URL, if it has one.
func redactUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
			return u.String()
		}
	}
	return raw
}

// ParseURL parses a store URL without opening anything.
func ParseURL(rawURL string) (Location, error) {
	bad := func(format string, args ...any) (Location, error) {
		return Location{}, fmt.Errorf("remotestore: store URL %q: %s", Redact(rawURL), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, secret included: say less.
		return Location{}, fmt.Errorf("remotestore: store URL %q does not parse", Redact(rawURL))
	}
	switch u.Scheme {
	case "mem":
		if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.RawQuery != "" {
			return bad("mem:// takes no host, path or parameters")
		}
		return Location{Scheme: "mem"}, nil
	case "file":
		if u.RawQuery != "" || u.User != nil {
			return bad("file URLs take no parameters or user")
		}
		var dir string
		switch {
		case u.Opaque != "": // file:rel/path
			dir = u.Opaque
		case u.Host == "" || u.Host == "localhost":
			dir = u.Path
		case u.Host == "." || u.Host == "..": // file://./rel/path
			dir = u.Host + u.Path
		default:
			return bad("host %q: a file URL is file:///absolute/path or file://./relative/path", u.Host)
		}
		if dir == "" || filepath.Clean(dir) == "/" {
			return bad("no directory (the root directory is not allowed)")
		}
		return Location{Scheme: "file", Dir: filepath.Clean(filepath.FromSlash(dir))}, nil
	case "s3":
		return parseS3(u, bad)
	case "":
		return bad("no scheme: use s3://, file:// or mem://")
	default:
		return bad("unknown scheme %q: use s3://, file:// or mem://", u.Scheme)
	}
}

func parseS3(u *url.URL, bad func(string, ...any) (Location, error)) (Location, error) {
	loc := Location{Scheme: "s3"}
	if u.Opaque != "" || u.Host == "" {
		return bad("no bucket: the form is s3://bucket/prefix")
	}
	if !bucketName.MatchString(u.Host) {
		return bad("bucket %q is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')", u.Host)
	}
	cfg := &loc.S3
	cfg.Bucket = u.Host
	if u.User != nil {
		cfg.AccessKey = u.User.Username()
		cfg.SecretKey, _ = u.User.Password()
	}
	loc.Prefix = strings.Trim(u.Path, "/")
	if loc.Prefix != "" {
		if err := remotestore.ValidateKey(loc.Prefix); err != nil {
			return bad("prefix: %v", err)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("parameters do not parse")
	}
	pathStyleSet := false
	for name, vals := range q {
		if !plainName.MatchString(name) {
			return bad("a parameter name is not valid (known: %s)", knownParams())
		}
		if len(vals) != 1 {
			return bad("parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		var perr error
		switch name {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "path_style":
			cfg.PathStyle, perr = strconv.ParseBool(v)
			pathStyleSet = true
		case "access_key":
			cfg.AccessKey = v
		case "secret_key":
			cfg.SecretKey = v
		case "secret_key_file":
			cfg.SecretKeyFile = v
		case "session_token":
			cfg.SessionToken = v
		case "session_token_file":
			cfg.SessionTokenFile = v
		case "profile":
			cfg.Profile = v
		case "part_size":
			cfg.PartSize, perr = parseSize(v)
		case "multipart_threshold":
			cfg.MultipartThreshold, perr = parseSize(v)
		case "concurrency":
			cfg.Concurrency, perr = strconv.Atoi(v)
		case "max_attempts":
			cfg.MaxAttempts, perr = strconv.Atoi(v)
		default:
			return bad("unknown parameter %q (known: %s)", name, knownParams())
		}
		if perr != nil {
			if slices.Contains(secretParams, name) {
				return bad("parameter %q is invalid", name)
			}
			return bad("parameter %s=%q: %v", name, v, perr)
		}
	}
	if !pathStyleSet {
		cfg.PathStyle = cfg.Endpoint != ""
	}
	if err := cfg.Validate(); err != nil {
		return bad("%v", err)
	}
	return loc, nil
}

// knownParams lists the s3 parameters, for errors.
func knownParams() string {
	names := append(slices.Sorted(maps.Keys(publicParams)), secretParams...)
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// parseSize parses bytes with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive size in bytes, KiB, MiB or GiB")
	}
	return n * mult, nil
}

// Open opens the store rawURL names, as
// WithMetrics(WithRetries(WithHealth(WithTimeouts(WithPrefix(backend))))) with
// the parts Options ask for. It sends no request.
func Open(ctx context.Context, rawURL string, opts Options) (remotestore.Store, error) {
	loc, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var s remotestore.Store
	switch loc.Scheme {
	case "mem":
		s = mem.New()
	case "file":
		fsStore, err := fs.New(loc.Dir)
		if err != nil {
			return nil, fmt.Errorf("remotestore: store URL %q: %w", Redact(rawURL), err)
		}
		s = fsStore
	case "s3":
		cfg := mergeS3(opts.S3, loc.S3)
		if opts.Registerer != nil {
			rm := s3.NewRequestMetrics(opts.Registerer)
			if cfg.Observer != nil {
				cfg.Observer = observers{cfg.Observer, rm}
			} else {
				cfg.Observer = rm
			}
		}
		s3Store, err := s3.New(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("remotestore: store URL %q: %w", Redact(rawURL), err)
		}
		s = s3Store
	}
	if s, err = remotestore.WithPrefix(s, loc.Prefix); err != nil {
		return nil, err
	}
	if opts.Timeouts.Name == "" {
		opts.Timeouts.Name = Redact(rawURL)
	}
	s = remotestore.WithTimeouts(s, opts.Timeouts)
	if opts.Health != nil {
		s = remotestore.WithHealth(s, opts.Health)
	}
	if !opts.NoRetry {
		s = remotestore.WithRetries(s, opts.Retry)
	}
	if opts.Registerer != nil {
		s = remotestore.WithMetrics(s, opts.Registerer)
	}
	return s, nil
}

// mergeS3 returns base with the fields the URL set.
func mergeS3(base, u s3.Config) s3.Config {
	base.Bucket = u.Bucket
	base.PathStyle = u.PathStyle
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&base.Endpoint, u.Endpoint)
	set(&base.Region, u.Region)
	set(&base.Profile, u.Profile)
	if u.AccessKey != "" {
		base.AccessKey, base.SecretKey, base.SessionToken = u.AccessKey, u.SecretKey, u.SessionToken
		base.SecretKeyFile, base.SessionTokenFile = u.SecretKeyFile, u.SessionTokenFile
	}
	if u.PartSize != 0 {
		base.PartSize = u.PartSize
	}
	if u.MultipartThreshold != 0 {
		base.MultipartThreshold = u.MultipartThreshold
	}
	if u.Concurrency != 0 {
		base.Concurrency = u.Concurrency
	}
	if u.MaxAttempts != 0 {
		base.MaxAttempts = u.MaxAttempts
	}
	return base
}

type observers []s3.Observer

func (o observers) ObserveRequest(op string, status int, took time.Duration, err error) {
	for _, x := range o {
		x.ObserveRequest(op, status, took, err)
	}
}
