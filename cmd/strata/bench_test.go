package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The broker binary links neither the benchmark nor what only the benchmark
// needs: its peer (kfake) and the MinIO test harness.
func TestBrokerBinaryDoesNotLinkBench(t *testing.T) {
	deps := goListDeps(t, "github.com/stratalog/strata/cmd/strata", "github.com/stratalog/strata/broker")
	for _, p := range []string{
		"github.com/stratalog/strata/bench",
		"github.com/twmb/franz-go/pkg/kfake",
		"github.com/stratalog/strata/internal/minioserver",
	} {
		if deps[p] {
			t.Errorf("cmd/strata links %s", p)
		}
	}
}

// The broker sees the tier and the object store through interfaces:
// cmd/strata builds them (internal/wire) and passes them in.
func TestBrokerDoesNotImportTheTierOrTheBackends(t *testing.T) {
	deps := goListDeps(t, "github.com/stratalog/strata/broker", "github.com/stratalog/strata/partition")
	for _, p := range []string{
		"github.com/stratalog/strata/tier",
		"github.com/stratalog/strata/remotestore/backend",
		"github.com/stratalog/strata/remotestore/s3",
		"github.com/stratalog/strata/internal/wire",
	} {
		if deps[p] {
			t.Errorf("broker imports %s", p)
		}
	}
}

// goListDeps is `go list -deps pkg`, which must list mustHave (so that an
// empty answer cannot pass).
func goListDeps(t *testing.T, pkg, mustHave string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v: %s", pkg, err, out)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps[mustHave] {
		t.Fatalf("go list -deps %s does not list %s: %s", pkg, mustHave, out)
	}
	return deps
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// binary builds the command pkg (without -race) once for the package's tests
// and returns its path.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "strata-cmd-test-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	p := filepath.Join(buildDir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", p, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v: %s", pkg, err, out)
	}
	built[pkg] = p
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// install copies the file src into dir as name, executable.
func install(t *testing.T, src, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// script writes an executable shell script into dir as name. Commands in it
// are by absolute path: the tests run strata with a PATH of their own.
func script(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s: %v", name, err)
	}
	return p
}

// strataCmd is strata ARGS with PATH=path and nothing else of this
// process's environment that could point at a strata-bench.
func strataCmd(strata, path string, args ...string) *exec.Cmd {
	cmd := exec.Command(strata, args...)
	cmd.Env = []string{"PATH=" + path, "HOME=" + os.Getenv("HOME")}
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return ee.ExitCode()
}

// strata bench runs the strata-bench next to it with --strata-binary=ITSELF
// and the arguments as given, its stdin, stdout and stderr, and exits with its
// status without a word of its own.
func TestBenchDispatchPassesArgsStdioAndStatus(t *testing.T) {
	dir, empty := t.TempDir(), t.TempDir()
	strata := install(t, binary(t, "github.com/stratalog/strata/cmd/strata"), dir, "strata")
	script(t, dir, "strata-bench", fmt.Sprintf(`for a in "$@"; do printf 'arg=%%s\n' "$a"; done
printf 'stdin=%%s\n' "$(%s)"
echo 'strata-bench to stderr' >&2
exit 7
`, lookPath(t, "cat")))

	cmd := strataCmd(strata, empty, "bench", "--quick", "--out", "dir with space", "extra")
	cmd.Stdin = strings.NewReader("from stdin")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := exitCode(t, cmd.Run())
	want := "arg=--strata-binary=" + strata + "\narg=--quick\narg=--out\narg=dir with space\narg=extra\nstdin=from stdin\n"
	if code != 7 || stdout.String() != want || stderr.String() != "strata-bench to stderr\n" {
		t.Fatalf("strata bench: exit %d, stdout %q, stderr %q; want exit 7, stdout %q and strata-bench's stderr alone",
			code, stdout.String(), stderr.String(), want)
	}
}

// Without a strata-bench beside it, strata bench finds one on PATH.
func TestBenchDispatchFromPath(t *testing.T) {
	dir, binDir := t.TempDir(), t.TempDir()
	strata := install(t, binary(t, "github.com/stratalog/strata/cmd/strata"), dir, "strata")
	script(t, binDir, "strata-bench", `echo "on PATH: $*"
`)
	out, err := strataCmd(strata, binDir, "bench", "--s3", "positional").CombinedOutput()
	if code := exitCode(t, err); code != 0 || string(out) != "on PATH: --strata-binary="+strata+" --s3 positional\n" {
		t.Fatalf("strata bench: exit %d, output %q; want the strata-bench on PATH to run", code, out)
	}
}

// SIGTERM to strata bench reaches the benchmark, which stops and reports;
// strata waits for it and exits with its status.
func TestBenchDispatchForwardsSIGTERM(t *testing.T) {
	dir, empty := t.TempDir(), t.TempDir()
	strata := install(t, binary(t, "github.com/stratalog/strata/cmd/strata"), dir, "strata")
	script(t, dir, "strata-bench", fmt.Sprintf(`trap 'echo stopped by TERM; exit 9' TERM
echo ready $$
while :; do %s 0.05; done
`, lookPath(t, "sleep")))

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := strataCmd(strata, empty, "bench", "--bogus")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(30 * time.Second):
			return "(nothing within 30s)"
		}
	}
	first := next()
	var pid int
	if _, err := fmt.Sscanf(first, "ready %d", &pid); err != nil {
		cmd.Process.Kill()
		t.Fatalf("strata bench: first line %q, want ready PID (stderr %q, exit %v)", first, stderr.String(), <-waitErr)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-waitErr:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		err = errors.New("strata bench did not exit within 30s of SIGTERM")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 9 {
		syscall.Kill(pid, syscall.SIGKILL) // the script, which strata did not stop
	}
	if code, l := exitCode(t, err), next(); code != 9 || l != "stopped by TERM" {
		t.Fatalf("after SIGTERM: exit %d, stdout %q, stderr %q; want exit 9 and the benchmark's own stop", code, l, stderr.String())
	}
}

// With no strata-bench beside strata nor on PATH, strata bench says how to
// build it and exits non-zero.
func TestBenchWithoutBinaryExplains(t *testing.T) {
	dir, empty := t.TempDir(), t.TempDir()
	strata := install(t, binary(t, "github.com/stratalog/strata/cmd/strata"), dir, "strata")
	var stdout, stderr bytes.Buffer
	cmd := strataCmd(strata, empty, "bench", "--help")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := exitCode(t, cmd.Run())
	msg := stderr.String()
	if code == 0 || stdout.Len() != 0 {
		t.Fatalf("strata bench without strata-bench: exit %d, stdout %q", code, stdout.String())
	}
	for _, w := range []string{"strata-bench", dir, "PATH", "make build", "go build -o " + filepath.Join(dir, "strata-bench") + " ./cmd/strata-bench"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not mention %q", msg, w)
		}
	}
	// A directory of that name is not the binary.
	if err := os.Mkdir(filepath.Join(dir, "strata-bench"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := strataCmd(strata, empty, "bench", "--help").CombinedOutput()
	if code := exitCode(t, err); code == 0 || !strings.Contains(string(out), "make build") {
		t.Fatalf("strata-bench a directory: exit %d, output %q", code, out)
	}
}

// The real strata-bench, built beside strata: its help, and its exit status
// for a bad command line.
func TestBenchDispatchRealBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/strata-bench")
	}
	dir, empty := t.TempDir(), t.TempDir()
	strata := install(t, binary(t, "github.com/stratalog/strata/cmd/strata"), dir, "strata")
	install(t, binary(t, "github.com/stratalog/strata/cmd/strata-bench"), dir, "strata-bench")

	var stdout, stderr bytes.Buffer
	cmd := strataCmd(strata, empty, "bench", "--help")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if code := exitCode(t, cmd.Run()); code != 0 {
		t.Fatalf("strata bench --help: exit %d, stderr %q", code, stderr.String())
	}
	for _, w := range []string{"-quick", "-s3", "-out", "-brokers", "-strata-binary", "-cold-bytes"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("strata bench --help does not list %s: %q", w, stderr.String())
		}
	}

	stdout.Reset()
	stderr.Reset()
	cmd = strataCmd(strata, empty, "bench", "--quick", "extra")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if code := exitCode(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), `"extra"`) || strings.Contains(stderr.String(), "strata:") {
		t.Fatalf("strata bench --quick extra: exit %d, stderr %q; want 2 and strata-bench's message alone", code, stderr.String())
	}
}
