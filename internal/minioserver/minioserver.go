// Package minioserver runs a real MinIO server as a child process, for tests,
// the benchmark and `make dev`: Launch starts one on free loopback ports with
// its data in a directory; Start does the same for a test, skipping it when
// no MinIO binary is installed (`make minio` builds one).
//
// The server listens on 127.0.0.1 only, with the console on another loopback
// port and the browser off. Its output goes to minio.log in the directory,
// which Start prints when a test fails. Buckets and keys are read back with
// minio-go, a client independent of the code under test.
package minioserver

import (
	"context"
	"errors"
	"fmt"
	"github.com/stratalog/strata/internal/freeport"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Environment variables read by FindBinary and Start.
const (
	// EnvBinary names the MinIO binary to run.
	EnvBinary = "STRATATEST_MINIO"
	// EnvRequire, set to 1, makes Start fail a test rather than skip it
	// when no binary is found.
	EnvRequire = "STRATATEST_REQUIRE_MINIO"
)

// Defaults of Options.
const (
	DefaultAccessKey    = "strata-test"
	DefaultSecretKey    = "strata-test-secret"
	DefaultStartTimeout = 60 * time.Second
	// Region is the region MinIO reports and buckets are made in.
	Region = "us-east-1"
)

// ErrNoBinary is returned by FindBinary when no MinIO binary is installed.
var ErrNoBinary = errors.New("minioserver: no minio binary found (run `make minio` to build one, or set " + EnvBinary + ")")

// Options configure Launch. The zero value is usable.
type Options struct {
	Binary       string        // default: FindBinary()
	AccessKey    string        // root user, default DefaultAccessKey
	SecretKey    string        // root password, default DefaultSecretKey
	Port         int           // S3 API port on 127.0.0.1; 0: a free one
	ConsolePort  int           // console port on 127.0.0.1; 0: a free one
	StartTimeout time.Duration // default DefaultStartTimeout
}

// Server is a running (or stopped) MinIO child process.
type Server struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	Addr      string // "127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Dir       string // data in Dir/data, log in Dir/minio.log
	LogPath   string

	opts        Options
	consoleAddr string

	mu struct {
		sync.Mutex
		cmd    *exec.Cmd
		exited chan struct{} // closed when cmd has been waited for
		client *minio.Client
	}
}

// FindBinary returns the MinIO binary to run: $STRATATEST_MINIO, else
// $XDG_CACHE_HOME/strata/bin/minio, else $HOME/.cache/strata/bin/minio (where
// `make minio` puts it), else minio on PATH.
func FindBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("minioserver: %s=%q: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	var candidates []string
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		candidates = append(candidates, filepath.Join(d, "strata", "bin", "minio"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(h, ".cache", "strata", "bin", "minio"))
	}
	for _, p := range candidates {
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", ErrNoBinary
}

func isExecutable(p string) error {
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// Launch starts MinIO with its data under dir (created if needed) and waits
// until it is ready. Stop it with Stop.
func Launch(dir string, opts Options) (*Server, error) {
	if opts.Binary == "" {
		b, err := FindBinary()
		if err != nil {
			return nil, err
		}
		opts.Binary = b
	}
	if opts.AccessKey == "" {
		opts.AccessKey = DefaultAccessKey
	}
	if opts.SecretKey == "" {
		opts.SecretKey = DefaultSecretKey
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("minioserver: %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("minioserver: cannot create data directory: %w", err)
	}
	// Free ports can be taken between our probe and MinIO's bind; try
	// fresh ones a few times unless the caller chose them.
	attempts := 1
	if opts.Port == 0 || opts.ConsolePort == 0 {
		attempts = 3
	}
	var lastErr error
	for range attempts {
		s := &Server{Dir: abs, LogPath: filepath.Join(abs, "minio.log"), AccessKey: opts.AccessKey, SecretKey: opts.SecretKey, opts: opts}
		port, cport := opts.Port, opts.ConsolePort
		if port == 0 {
			if port, err = freeport.Get(); err != nil {
				return nil, fmt.Errorf("minioserver: no free port: %w", err)
			}
		}
		if cport == 0 {
			if cport, err = freeport.Get(); err != nil {
				return nil, fmt.Errorf("minioserver: no free port: %w", err)
			}
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.consoleAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(cport))
		s.Endpoint = "http://" + s.Addr
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// start runs the process and waits for it to be ready.
func (s *Server) start() error {
	log, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("minioserver: cannot open log: %w", err)
	}
	defer log.Close() // the child has its own descriptor
	fmt.Fprintf(log, "--- minioserver: starting %s on %s (console %s) at %s\n", s.opts.Binary, s.Addr, s.consoleAddr, time.Now().Format(time.RFC3339))
	cmd := exec.Command(s.opts.Binary, "server",
		"--address", s.Addr,
		"--console-address", s.consoleAddr,
		"--certs-dir", filepath.Join(s.Dir, "certs"),
		filepath.Join(s.Dir, "data"))
	cmd.Env = append(environWithout("MINIO_"),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on",
		"MINIO_REGION="+Region,
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Stop kills the whole group
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("minioserver: cannot start %s: %w", s.opts.Binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.mu.cmd, s.mu.exited = cmd, exited
	s.mu.Unlock()

	if err := s.waitReady(exited); err != nil {
		s.Stop()
		return fmt.Errorf("%w\n%s", err, s.LogTail(30))
	}
	return nil
}

func environWithout(prefix string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, prefix) })
}

func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/minio/health/live", "/minio/health/ready"} {
		for {
			resp, err := client.Get(s.Endpoint + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-exited:
				return fmt.Errorf("minioserver: minio exited before it was ready on %s (log %s)", s.Addr, s.LogPath)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("minioserver: minio not ready on %s after %v (log %s)", s.Addr, s.opts.StartTimeout, s.LogPath)
			}
		}
	}
	return nil
}

// Stop kills the server's process group (SIGTERM, then SIGKILL after five
// seconds) and waits for it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.mu.cmd, s.mu.exited
	s.mu.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	// Anything the group left behind goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Restart stops the server and starts it again on the same ports with the
// same data, for tests of an object store that goes away and comes back.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Running reports whether the process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cmd == nil {
		return false
	}
	select {
	case <-s.mu.exited:
		return false
	default:
		return true
	}
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(no minio log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Pid is the server process's id, 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cmd == nil || s.mu.cmd.Process == nil {
		return 0
	}
	return s.mu.cmd.Process.Pid
}

// Client returns a minio-go client for the server, independent of the
// remotestore code under test.
func (s *Server) Client() (*minio.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.client == nil {
		c, err := minio.New(s.Addr, &minio.Options{
			Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
			Secure: false,
			Region: Region,
		})
		if err != nil {
			return nil, fmt.Errorf("minioserver: client: %w", err)
		}
		s.mu.client = c
	}
	return s.mu.client, nil
}

// CreateBucket makes a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		return fmt.Errorf("minioserver: create bucket %q: %w", name, err)
	}
	return nil
}

// ObjectKeys lists, in key order, the keys in bucket that start with prefix.
func (s *Server) ObjectKeys(ctx context.Context, bucket, prefix string) ([]string, error) {
	c, err := s.Client()
	if err != nil {
		return nil, err
	}
	var keys []string
	for obj := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("minioserver: list %q in bucket %q: %w", prefix, bucket, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	slices.Sort(keys)
	return keys, nil
}
