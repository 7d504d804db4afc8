package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// benchBinary is the benchmark's command, cmd/strata-bench. It is a binary of
// its own so that this one does not link the benchmark (package bench), its
// peer (kfake) or its MinIO harness (internal/minioserver).
const benchBinary = "strata-bench"

// exitStatus is a child's exit status that strata exits with, after the
// child wrote its own messages.
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string { return e.err.Error() }
func (e *exitStatus) Unwrap() error { return e.err }

// benchCommand is `strata bench ARGS`: it runs strata-bench (next to this
// executable, else on PATH) with --strata-binary=THIS ARGS, this process's
// stdin, and stdout and stderr, forwards SIGINT and SIGTERM to it, and
// returns its exit status as an *exitStatus. See docs/benchmarks.md.
func benchCommand(args []string, stdout, stderr io.Writer) error {
	self, selfErr := os.Executable()
	bin, err := findBench(self, selfErr)
	if err != nil {
		return err
	}
	var argv []string
	if selfErr == nil {
		argv = append(argv, "--strata-binary="+self)
	}
	argv = append(argv, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr

	// Catch SIGINT and SIGTERM before the child starts, so that they reach
	// it (a Ctrl-C reaches both, and the benchmark takes a second one as
	// well) and this process waits for its report instead of dying first.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				return nil
			}
			code := ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			return &exitStatus{code: code, err: fmt.Errorf("%s: %w", benchBinary, err)}
		}
	}
}

// findBench finds strata-bench next to this executable (self), else on PATH.
func findBench(self string, selfErr error) (string, error) {
	dir := "."
	if selfErr == nil {
		dir = filepath.Dir(self)
		p := filepath.Join(dir, benchBinary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(benchBinary); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("bench: the benchmark is a separate binary, %s, found neither in %s (next to strata) nor on PATH; "+
		"build it with `make build` (strata and %s) or `go build -o %s ./cmd/strata-bench` from the repository root",
		benchBinary, dir, benchBinary, filepath.Join(dir, benchBinary))
}
