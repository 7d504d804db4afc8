package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stratalog/strata/tier"
)

// TestPrintStatusTopicCost: tier ls shows a topic's live cost once, above
// its partitions, from the running broker's /v1/tier answer.
func TestPrintStatusTopicCost(t *testing.T) {
	c := &tier.TopicCost{Requests: map[string]int64{tier.KindPut: 12, tier.KindGet: 34, tier.KindDelete: 2},
		RemoteBytes: 5000, ReadBytes: 777, DollarsPerDay: 0.125}
	var buf bytes.Buffer
	printStatus(&buf, []tier.PartitionStatus{
		{Topic: "events", Partition: 0, TopicCost: c},
		{Topic: "events", Partition: 1, TopicCost: c},
	})
	out := buf.String()
	if n := strings.Count(out, "cost $0.1250/day"); n != 1 {
		t.Fatalf("cost line %d times, want once:\n%s", n, out)
	}
	for _, want := range []string{"remote 5000 bytes, read 777 bytes", "put 12, get 34, head 0, delete 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("tier ls does not show %q:\n%s", want, out)
		}
	}
}
