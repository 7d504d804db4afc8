package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/stratalog/strata/internal/freeport"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ChildConsume is the hot consume of the headline topic from a broker in a
// child process (`strata serve`), read by the protocol-level consumer in this
// process. The broker's CPU is the child's utime + stime from
// /proc/<pid>/stat, read just before and just after the consume phase: user
// and kernel time of the broker alone, sendfile(2) or read+write included,
// nothing of the client.
type ChildConsume struct {
	Sendfile      bool       `json:"sendfile"`
	Round         int        `json:"round"`
	Consume       Throughput `json:"consume"`
	UserSeconds   float64    `json:"broker_user_cpu_seconds"`
	SystemSeconds float64    `json:"broker_system_cpu_seconds"`
	BrokerSeconds float64    `json:"broker_cpu_seconds"`         // user + system
	ClientSeconds float64    `json:"client_process_cpu_seconds"` // this process (the consumer), getrusage
	ClientProfile string     `json:"client_profile,omitempty"`   // the consumer's CPU profile, in the output directory
	CPUPerGB      float64    `json:"broker_cpu_seconds_per_gb"`  // over the broker's fetch bytes
	FetchBytes    int64      `json:"fetch_bytes"`                // strata_broker_fetch_bytes_total during the phase
	SendfileBytes int64      `json:"sendfile_bytes"`             // strata_broker_fetch_sendfile_bytes_total during the phase
	CopiedBytes   int64      `json:"copied_bytes"`               // strata_broker_fetch_copied_bytes_total during the phase
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on Linux on every architecture Go supports.
const clockTicks = 100

// strataBinary is the strata executable for the child-process broker,
// Config.StrataBinary (cmd/strata-bench sets it: the strata that ran
// `strata bench`, or strata next to it or on PATH).
func strataBinary(cfg *Config) (string, error) {
	if cfg.StrataBinary == "" {
		return "", errors.New("no strata executable: Config.StrataBinary (--strata-binary) is not set and none was found next to strata-bench or on PATH")
	}
	return cfg.StrataBinary, nil
}

// childStrata is `strata serve` in a child process.
type childStrata struct {
	cmd         *exec.Cmd
	addr        string
	metricsAddr string
	done        chan struct{}
	waitErr     error
	stderr      *tailBuffer
}

// startChild starts bin serve on dir with the harness's broker settings,
// strata.sendfile.enable=sendfile, a free loopback port and metrics.listen
// on another, and waits until it accepts connections.
func startChild(ctx context.Context, bin, dir string, sendfile bool) (*childStrata, error) {
	port, err := freeport.Get()
	if err != nil {
		return nil, err
	}
	mport, err := freeport.Get()
	if err != nil {
		return nil, err
	}
	c := &childStrata{
		addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		metricsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(mport)),
		done:        make(chan struct{}),
		stderr:      &tailBuffer{max: 16 << 10},
	}
	args := []string{"serve", "--log-level", "warn"}
	for _, s := range []string{
		"listeners=PLAINTEXT://" + c.addr,
		"log.dirs=" + filepath.Join(dir, "log"),
		"remote.storage.url=file://" + filepath.Join(dir, "remote"),
		"remote.cache.dir=" + filepath.Join(dir, "cache"),
		"metrics.listen=" + c.metricsAddr,
		"strata.sendfile.enable=" + strconv.FormatBool(sendfile),
		"log.retention.check.interval.ms=1000",
		"group.initial.rebalance.delay.ms=0",
		"message.max.bytes=16777216",
	} {
		args = append(args, "--set", s)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout = c.stderr
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start child broker: %w", err)
	}
	go func() { c.waitErr = c.cmd.Wait(); close(c.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.addr, time.Second)
		if err == nil {
			conn.Close()
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("bench: child broker exited before serving: %v: %s", c.waitErr, c.stderr)
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("bench: child broker not serving on %s after 30s: %s", c.addr, c.stderr)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 30 s).
func (c *childStrata) stop() error {
	select {
	case <-c.done:
		return c.waitErr
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.waitErr != nil {
			return fmt.Errorf("bench: child broker: %v: %s", c.waitErr, c.stderr)
		}
		return nil
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		return errors.New("bench: child broker did not stop within 30s of SIGTERM; killed")
	}
}

// cpu returns the child's user and system CPU so far, from /proc/<pid>/stat.
func (c *childStrata) cpu() (user, system time.Duration, err error) {
	return procCPU(c.cmd.Process.Pid)
}

func procCPU(pid int) (user, system time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	tick := time.Second / clockTicks
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}

// metrics scrapes the child's /metrics and sums each named counter over its
// label sets.
func (c *childStrata) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: child metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: child metrics: %s", resp.Status)
	}
	return sumExposition(resp.Body, names...)
}

// sumExposition sums the samples of each named metric in the Prometheus text
// format.
func sumExposition(r io.Reader, names ...string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, n := range names {
		out[n] = 0
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if _, ok := out[name]; !ok {
			continue
		}
		rest := line[len(name):]
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bench: metrics line %q: %w", line, err)
		}
		out[name] += v
	}
	return out, sc.Err()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
