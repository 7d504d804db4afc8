package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// One node leads every partition it has: ElectLeaders answers
// ELECTION_NOT_NEEDED for each named partition, UNKNOWN_TOPIC_OR_PARTITION
// for an unknown one, nothing for "all partitions" (those already led as
// asked are left out, as Kafka does), INVALID_REQUEST for an unknown type.
func TestElectLeadersOneNode(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("el", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set := kadm.TopicsSet{}
	set.Add("el", 0, 1)
	set.Add("nope", 0)
	res, err := tb.admin().ElectLeaders(ctx, kadm.ElectPreferredReplica, set)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 1} {
		if r := res["el"][p]; r.Err != kerr.ElectionNotNeeded {
			t.Errorf("el-%d: %v, want ELECTION_NOT_NEEDED", p, r.Err)
		}
	}
	if r := res["nope"][0]; r.Err != kerr.UnknownTopicOrPartition {
		t.Errorf("nope-0: %v, want UNKNOWN_TOPIC_OR_PARTITION", r.Err)
	}
	all, err := tb.admin().ElectLeaders(ctx, kadm.ElectLiveReplica, nil)
	if err != nil || len(all) != 0 {
		t.Fatalf("all partitions: %v %v, want nothing to report", all, err)
	}
	req := kmsg.NewPtrElectLeadersRequest()
	req.Version, req.ElectionType = 2, 7
	kresp, err := req.RequestWith(ctx, tb.client())
	if err != nil || kresp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("election type 7: %v %+v", err, kresp)
	}
}
