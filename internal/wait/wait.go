// Package wait is the tests' one way to wait for something that happens on
// another goroutine or in another process: poll a condition until it holds.
//
// The deadline is a guard that stops a hung test with a message naming what it
// waited for; it is never an assertion about speed. It is generous because the
// tests run under -race on two shared cores.
package wait

import (
	"testing"
	"time"
)

const (
	// Timeout is how long Eventually waits before it gives up.
	Timeout = 30 * time.Second
	// interval is the pause between two polls.
	interval = 5 * time.Millisecond
)

// Eventually polls cond until it returns true, and fails the test (naming
// what) if it has not after Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	For(t, Timeout, what, cond)
}

// For is Eventually with its own deadline, for the waits that outlast
// Timeout (an upload to a real object store, a broker process's start-up).
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Until polls cond until it returns true (Until reports true) or timeout
// passes (false), for callers whose failure message shows what cond saw.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}
