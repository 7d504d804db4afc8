package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A request-level fetch error (here a follower fetch, which one node cannot
// serve) is the top-level error code from v7; before v7 there is none, and
// Kafka puts the error on every requested partition instead of answering an
// empty response a client would take for "no data".
func TestFetchRequestErrorBelowV7OnEveryPartition(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("fe", 2, nil)
	for _, v := range []int16{4, 5, 6, 7, 11, 12} {
		r := tb.raw()
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(v)
		req.ReplicaID = 1
		req.MaxBytes = 1 << 20
		req.SessionEpoch = -1
		for _, name := range []string{"fe", "missing"} {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = name
			for p := int32(0); p < 2; p++ {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition = p
				rp.PartitionMaxBytes = 1 << 20
				rp.LogStartOffset = -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		resp, err := r.request(req)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		fr := resp.(*kmsg.FetchResponse)
		if v >= 7 {
			if fr.ErrorCode != kerr.NotLeaderForPartition.Code || len(fr.Topics) != 0 {
				t.Fatalf("v%d: top-level error %d with %d topics, want %d and none", v, fr.ErrorCode, len(fr.Topics), kerr.NotLeaderForPartition.Code)
			}
			continue
		}
		got := map[string]int{}
		for _, rt := range fr.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != kerr.NotLeaderForPartition.Code {
					t.Fatalf("v%d: %s/%d error %d, want %d", v, rt.Topic, rp.Partition, rp.ErrorCode, kerr.NotLeaderForPartition.Code)
				}
				if rp.HighWatermark != -1 || len(rp.RecordBatches) != 0 {
					t.Fatalf("v%d: %s/%d high watermark %d with %d record bytes, want -1 and none", v, rt.Topic, rp.Partition, rp.HighWatermark, len(rp.RecordBatches))
				}
				got[rt.Topic]++
			}
		}
		if got["fe"] != 2 || got["missing"] != 2 {
			t.Fatalf("v%d: partitions answered %v, want both of each topic", v, got)
		}
	}
}
