package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/freeport"
)

// Client quotas live in etcd: a write is a compare-and-swap on the entity's
// key, every view mirrors it, and a write whose function fails changes
// nothing.
func TestClientQuotasInEtcd(t *testing.T) {
	var ports freeport.Holder
	p, err := ports.StablePair()
	if err != nil {
		t.Fatal(err)
	}
	ports.Release()
	h := &harness{t: t, nodes: map[int32]*Node{},
		voters: []config.Voter{{ID: 1, Host: "127.0.0.1", Port: p}}, urls: []string{fmt.Sprintf("http://127.0.0.1:%d", p+1)}}
	n := h.start(h.cfg(1, true))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	put := func(entity string, vals map[string]float64) int64 {
		t.Helper()
		rev, err := n.AlterClientQuota(ctx, entity, func(cur map[string]float64) (map[string]float64, error) {
			next := maps.Clone(cur)
			maps.Copy(next, vals)
			for k, v := range vals {
				if v == 0 {
					delete(next, k)
				}
			}
			return next, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.View().WaitRev(ctx, rev); err != nil {
			t.Fatal(err)
		}
		return rev
	}
	put("client-id=slow", map[string]float64{"producer_byte_rate": 1024})
	put("client-id=slow", map[string]float64{"request_percentage": 25})
	put("user=<default>", map[string]float64{"consumer_byte_rate": 2048})
	got := n.View().Snapshot().ClientQuotas
	if len(got) != 2 || got["client-id=slow"]["producer_byte_rate"] != 1024 || got["client-id=slow"]["request_percentage"] != 25 ||
		got["user=<default>"]["consumer_byte_rate"] != 2048 {
		t.Fatalf("view: %v", got)
	}
	put("user=<default>", map[string]float64{"consumer_byte_rate": 0}) // its last key: the entity goes
	if got := n.View().Snapshot().ClientQuotas; len(got) != 1 || got["user=<default>"] != nil {
		t.Fatalf("after removing the last key: %v", got)
	}
	boom := errors.New("refused")
	if _, err := n.AlterClientQuota(ctx, "client-id=slow", func(map[string]float64) (map[string]float64, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("a failing function: %v", err)
	}
	// A fresh read of etcd (what a broker that starts later loads) agrees.
	s, err := n.View().load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(s.ClientQuotas["client-id=slow"], map[string]float64{"producer_byte_rate": 1024, "request_percentage": 25}) || len(s.ClientQuotas) != 1 {
		t.Fatalf("loaded: %v", s.ClientQuotas)
	}
}
