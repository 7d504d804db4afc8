package main

import (
	"bytes"
	"strings"
	"testing"
)

// Bad configuration stops start-up with a message that names the key and
// what is allowed, before anything is opened.
func TestServeRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--set", "log.segmnt.bytes=1048576"}, []string{"log.segmnt.bytes", "unknown"}},
		{[]string{"--set", "log.segment.bytes=12x"}, []string{"log.segment.bytes", "12x", "allowed"}},
		{[]string{"--set", "num.partitions=0"}, []string{"num.partitions", "allowed"}},
		{[]string{"--set", "listeners=http://127.0.0.1:9092"}, []string{"listeners"}},
		{[]string{"--set", "remote.storage.url=ftp://x/y"}, []string{"remote.storage.url"}},
		{[]string{"extra"}, []string{"--set"}},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		args := append([]string{"serve", "--set", "log.dirs=" + dir, "--set", "listeners=PLAINTEXT://127.0.0.1:0"}, c.args...)
		err := run(args, &stderr, &stderr)
		if err == nil {
			t.Fatalf("%v: started", c.args)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", c.args, err, w)
			}
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"srve"}, &out, &out); err == nil || !strings.Contains(err.Error(), "srve") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := run(nil, &out, &out); err == nil {
		t.Fatal("no command accepted")
	}
	if !strings.Contains(out.String(), "strata serve") {
		t.Fatalf("usage not printed: %s", out.String())
	}
}
