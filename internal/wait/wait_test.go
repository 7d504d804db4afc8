package wait

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for i := 0; i < 3; i++ {
			n.Add(1)
		}
	}()
	Eventually(t, "three increments", func() bool { return n.Load() == 3 })
}

// fakeTB records a Fatalf instead of ending the goroutine's test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestForFailsNamingWhatItWaitedFor(t *testing.T) {
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("recovered %v, want the Fatalf", r)
			}
		}()
		For(f, 20*time.Millisecond, "the impossible", func() bool { return false })
	}()
	if !strings.Contains(f.msg, "the impossible") {
		t.Fatalf("failure %q does not name what it waited for", f.msg)
	}
}

func TestUntilReportsTimeout(t *testing.T) {
	if Until(10*time.Millisecond, func() bool { return false }) {
		t.Fatal("Until reported a condition that never holds")
	}
	polls := 0
	if !Until(time.Minute, func() bool { polls++; return polls == 3 }) || polls != 3 {
		t.Fatalf("Until after %d polls", polls)
	}
}
