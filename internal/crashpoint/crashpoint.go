// Package crashpoint stops the process between two steps of a multi-step
// operation, for the kill -9 tests: At exits at once, as a kill -9 would
// (no deferred function, no flush), when the environment variable
// STRATATEST_CRASH_AT names the point. Unset, it costs one comparison.
package crashpoint

import (
	"fmt"
	"os"
)

var crashAt = os.Getenv("STRATATEST_CRASH_AT")

// At exits the process with status 137 if STRATATEST_CRASH_AT is point.
func At(point string) {
	if crashAt != "" && crashAt == point {
		fmt.Fprintf(os.Stderr, "STRATATEST_CRASH_AT=%s: exiting\n", point)
		os.Exit(137)
	}
}
