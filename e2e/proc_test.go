// Package e2e runs the strata binary as a subprocess against real clients:
// kcat (librdkafka), franz-go, sarama, segmentio/kafka-go and kafkajs,
// including kill -9 crashes and replays from the remote tier.
package e2e

import (
	"bytes"
	"github.com/stratalog/strata/internal/clustertest"
	"github.com/stratalog/strata/internal/freeport"
	"github.com/stratalog/strata/internal/wait"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// strataBin is the strata binary, built once per test run.
func strataBin(t testing.TB) string { return clustertest.Binary(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBinary()
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago, outside the
// ephemeral range: a broker restarted on it must not find it taken by some
// client's connection.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.Stable()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// proc is a strata broker subprocess.
type proc struct {
	t    testing.TB
	dir  string
	port int
	sets []string
	env  []string // added to the environment of the next start
	cmd  *exec.Cmd
	logs *bytes.Buffer
	mu   sync.Mutex
}

func (p *proc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// startProc starts strata serve on a free port with its data in a temp dir.
func startProc(t testing.TB, sets ...string) *proc {
	t.Helper()
	p := &proc{t: t, dir: t.TempDir(), port: freePort(t), sets: sets}
	p.start()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("broker log:\n%s", p.logs.String())
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

// launch starts strata serve without waiting for it (a broker that exits
// at a crash point before it listens).
func (p *proc) launch() {
	p.t.Helper()
	args := []string{"serve",
		"--set", "listeners=PLAINTEXT://" + p.addr(),
		"--set", "log.dirs=" + p.dir,
		"--set", "group.initial.rebalance.delay.ms=0",
	}
	for _, s := range p.sets {
		args = append(args, "--set", s)
	}
	if p.logs == nil {
		p.logs = &bytes.Buffer{}
	}
	cmd := exec.Command(strataBin(p.t), args...)
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout = lockedWriter{&p.mu, p.logs}
	cmd.Stderr = lockedWriter{&p.mu, p.logs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
}

// start starts strata serve and waits until it listens.
func (p *proc) start() {
	p.t.Helper()
	p.launch()
	if !wait.Until(20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", p.addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		p.t.Fatalf("broker did not listen on %s within 20s; log:\n%s", p.addr(), p.logs.String())
	}
}

// wait waits for a broker that exits by itself (a crash point).
func (p *proc) wait() error {
	if p.cmd == nil {
		return nil
	}
	err := p.cmd.Wait()
	p.cmd = nil
	return err
}

// kill9 kills the broker without warning.
func (p *proc) kill9() {
	if p.cmd == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
	p.cmd = nil
}

// stop asks the broker to shut down cleanly, then kills it after 20s.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.t.Errorf("broker did not stop within 20s of SIGTERM")
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	p.cmd = nil
}
