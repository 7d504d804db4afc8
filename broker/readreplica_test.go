package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSelectRackReplica is RackAwareReplicaSelector's rule (KIP-392).
func TestSelectRackReplica(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t1 := t0.Add(time.Second)
	cases := []struct {
		name       string
		clientRack string
		leaderRack string
		cands      []readCandidate
		want       int32
	}{
		{"no client rack", "", "r1", []readCandidate{{id: 2, rack: "r2", leo: 10}}, -1},
		{"leader in the client's rack", "r1", "r1", []readCandidate{{id: 2, rack: "r1", leo: 10}}, -1},
		{"no candidate in the rack", "r3", "r1", []readCandidate{{id: 2, rack: "r2", leo: 10}}, -1},
		{"no candidate", "r2", "r1", nil, -1},
		{"one match", "r2", "r1", []readCandidate{{id: 2, rack: "r2", leo: 10}, {id: 3, rack: "r3", leo: 10}}, 2},
		{"leader without a rack", "r2", "", []readCandidate{{id: 2, rack: "r2", leo: 10}}, 2},
		{"highest log end offset", "r2", "r1", []readCandidate{{id: 4, rack: "r2", leo: 9}, {id: 2, rack: "r2", leo: 10}, {id: 5, rack: "r3", leo: 11}}, 2},
		{"caught up last", "r2", "r1", []readCandidate{{id: 2, rack: "r2", leo: 10, caughtUp: t1}, {id: 4, rack: "r2", leo: 10, caughtUp: t0}}, 2},
		{"highest id", "r2", "r1", []readCandidate{{id: 4, rack: "r2", leo: 10, caughtUp: t0}, {id: 2, rack: "r2", leo: 10, caughtUp: t0}}, 4},
	}
	for _, c := range cases {
		if got := selectRackReplica(c.clientRack, c.leaderRack, c.cands); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

// TestFetchResponsePreferredReadReplica decodes, with kmsg, a response whose
// partition redirects the consumer, at every version that has the field.
func TestFetchResponsePreferredReadReplica(t *testing.T) {
	for v := int16(11); v <= 17; v++ {
		parts := []fetchPart{
			{key: sessKey{name: "t", id: [16]byte{1}, index: 0}, hw: 7, logStart: 0, redirect: true, readReplica: 2},
			{key: sessKey{name: "t", id: [16]byte{1}, index: 1}, hw: 3, logStart: 0},
		}
		var body []byte
		for _, p := range encodeFetchResponse(v, 0, 0, parts, nil) {
			body = append(body, p.mem...)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		if err := resp.ReadFrom(body); err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		got := resp.Topics[0].Partitions
		if got[0].PreferredReadReplica != 2 || got[0].HighWatermark != 7 || got[1].PreferredReadReplica != -1 {
			t.Errorf("v%d: preferred read replicas %d, %d (hw %d), want 2, -1 (hw 7)", v, got[0].PreferredReadReplica, got[1].PreferredReadReplica, got[0].HighWatermark)
		}
	}
}
