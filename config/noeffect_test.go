package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A Kafka key with no meaning in Strata is accepted, and a start-up logs one
// warning naming it and why, only when it was set explicitly.
func TestWarnNoEffectOnlyForKeysSet(t *testing.T) {
	b, err := Load("", []string{"STRATA_NUM_IO_THREADS=16"}, []string{"num.network.threads=5", "log.preallocate=true", "log.segment.bytes=1000"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	b.WarnNoEffect(slog.New(slog.NewTextHandler(&buf, nil)))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := map[string]string{
		"num.network.threads": "goroutine per connection",
		"num.io.threads":      "connection's goroutine",
		"log.preallocate":     "not preallocated",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d warnings, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, "level=WARN") {
			t.Errorf("not a warning: %s", l)
		}
		found := false
		for k, why := range want {
			if strings.Contains(l, "key="+k+" ") {
				found = true
				if !strings.Contains(l, why) {
					t.Errorf("warning for %s does not say why (%q): %s", k, why, l)
				}
			}
		}
		if !found {
			t.Errorf("unexpected warning: %s", l)
		}
	}

	// Defaults only: nothing.
	buf.Reset()
	Default().WarnNoEffect(slog.New(slog.NewTextHandler(&buf, nil)))
	if buf.Len() != 0 {
		t.Fatalf("warnings for defaults:\n%s", buf.String())
	}
}
