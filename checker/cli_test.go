package checker

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad command lines get an error saying what is wrong, before any network.
func TestCommandRejectsBadInput(t *testing.T) {
	t.Chdir(t.TempDir()) // a stray history file would land here
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("{\"kind\":\"ack\",\"p\":0,\"o\":0,\"v\":\"a-0\"}\nnot json\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no subcommand"},
		{[]string{"prodce"}, `unknown subcommand "prodce"`},
		{[]string{"produce", "--topic", "t", "--out", "f"}, "--brokers is required"},
		{[]string{"produce", "--brokers", "h:1", "--topic", "t"}, "--out is required"},
		{[]string{"produce", "--brokers", "h:1", "--topic", "t", "--out", "f", "--name", "a-b"}, "contains '-'"},
		{[]string{"consume", "--brokers", "h:1", "--topic", "t", "--out", "f"}, "no consumer group"},
		{[]string{"read", "--brokers", "h:1", "--out", "f"}, "no topic"},
		{[]string{"read", "--brokers", "h:1", "--topic", "t", "--out", "f", "extra"}, `unexpected argument "extra"`},
		{[]string{"analyze"}, "no history files"},
		{[]string{"analyze", garbage}, garbage + ":2"},
		{[]string{"analyze", garbage + "-missing"}, "no such file"},
		{[]string{"produce", "--producers=x"}, "invalid value"},
	} {
		err := Command(c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want it to mention %q", c.args, err, c.want)
		}
	}
}
