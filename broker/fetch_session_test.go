package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchSessionsKIP227 walks a fetch session as a client does: a full fetch
// opens it (epoch 0), incremental fetches follow with epochs 1, 2, ... and
// carry only changes; the answers carry only partitions with news.
func TestFetchSessionsKIP227(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("sess", 2, nil)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceSync(t, prod, recordsFor("sess", 10, 2)...)
	r := tb.raw()
	fetch := func(id, epoch int32, parts map[int32]int64, forget []int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.MaxBytes, req.MaxWaitMillis = 12, 1<<20, 0
		req.SessionID, req.SessionEpoch = id, epoch
		if len(parts) > 0 {
			rt := kmsg.FetchRequestTopic{Topic: "sess"}
			for p, off := range parts {
				rt.Partitions = append(rt.Partitions, kmsg.FetchRequestTopicPartition{Partition: p, FetchOffset: off, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1})
			}
			req.Topics = append(req.Topics, rt)
		}
		if len(forget) > 0 {
			req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "sess", Partitions: forget}}
		}
		resp, err := r.request(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.FetchResponse)
	}
	count := func(resp *kmsg.FetchResponse) (parts, withData int) {
		for _, tp := range resp.Topics {
			for _, p := range tp.Partitions {
				parts++
				if len(p.RecordBatches) > 0 {
					withData++
				}
			}
		}
		return
	}

	full := fetch(0, 0, map[int32]int64{0: 0, 1: 0}, nil)
	if full.ErrorCode != 0 || full.SessionID == 0 {
		t.Fatalf("full fetch: code %d session %d", full.ErrorCode, full.SessionID)
	}
	if p, d := count(full); p != 2 || d != 2 {
		t.Fatalf("full fetch: %d partitions, %d with data", p, d)
	}
	id := full.SessionID
	// Epoch 1: the client moved both partitions to 5; nothing new since.
	inc := fetch(id, 1, map[int32]int64{0: 5, 1: 5}, nil)
	if inc.ErrorCode != 0 {
		t.Fatalf("epoch 1: %v", kerr.ErrorForCode(inc.ErrorCode))
	}
	if p, _ := count(inc); p != 0 {
		t.Fatalf("epoch 1: %d partitions answered, want none (no news)", p)
	}
	// New records on partition 1 only: epoch 2, no changes sent, only p1 answered.
	produceSync(t, prod, &kgo.Record{Topic: "sess", Partition: 1, Value: []byte("new")})
	inc = fetch(id, 2, nil, nil)
	if p, d := count(inc); inc.ErrorCode != 0 || p != 1 || d != 1 || inc.Topics[0].Partitions[0].Partition != 1 {
		t.Fatalf("epoch 2: code %d, %d partitions, %d with data", inc.ErrorCode, p, d)
	}
	// Forget partition 1; a wrong epoch and an unknown session are refused.
	if inc = fetch(id, 3, nil, []int32{1}); inc.ErrorCode != 0 {
		t.Fatalf("epoch 3: %v", kerr.ErrorForCode(inc.ErrorCode))
	}
	if inc = fetch(id, 9, nil, nil); inc.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("wrong epoch: code %d", inc.ErrorCode)
	}
	if inc = fetch(id+1, 1, nil, nil); inc.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: code %d", inc.ErrorCode)
	}
}
