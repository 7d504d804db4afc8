package broker

import (
	"testing"

	"github.com/stratalog/strata/cluster"
)

func TestParseHWCheckpoint(t *testing.T) {
	hws, err := parseHWCheckpoint([]byte("0\n2\nfoo 0 12\n__consumer_offsets 49 7\n"))
	if err != nil || len(hws) != 2 || hws[cluster.TP{Topic: "foo", Partition: 0}] != 12 || hws[cluster.TP{Topic: "__consumer_offsets", Partition: 49}] != 7 {
		t.Fatalf("got %v, %v", hws, err)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n", "0\n-1\n", "0\n2\nfoo 0 1\n", "0\n1\nfoo x 1\n", "0\n1\nfoo 0 -5\n", "0\n1\nfoo 0\n"} {
		if _, err := parseHWCheckpoint([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
