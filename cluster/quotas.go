package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// AlterClientQuota replaces the client quotas of entity with what fn returns
// for the current ones (empty when it has none), by compare-and-swap on the
// entity's key; an empty result deletes the key. An error from fn is
// returned as is and nothing is written. It returns the write's revision:
// every broker's view applies it from its watch.
func (n *Node) AlterClientQuota(ctx context.Context, entity string, fn func(cur map[string]float64) (map[string]float64, error)) (int64, error) {
	if entity == "" {
		return 0, fmt.Errorf("cluster: empty quota entity")
	}
	key := quotasPrefix + entity
	for {
		resp, err := n.client.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("cluster: cannot read the quotas of %q: %w", entity, err)
		}
		cur := map[string]float64{}
		modRev := int64(0)
		if len(resp.Kvs) > 0 {
			if err := json.Unmarshal(resp.Kvs[0].Value, &cur); err != nil {
				return 0, fmt.Errorf("cluster: the quotas of %q do not decode: %w", entity, err)
			}
			modRev = resp.Kvs[0].ModRevision
		}
		next, err := fn(cur)
		if err != nil {
			return 0, err
		}
		op := clientv3.OpDelete(key)
		if len(next) > 0 {
			val, err := json.Marshal(next)
			if err != nil {
				return 0, fmt.Errorf("cluster: the quotas of %q do not encode: %w", entity, err)
			}
			op = clientv3.OpPut(key, string(val))
		}
		tx, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(op).Commit()
		if err != nil {
			return 0, fmt.Errorf("cluster: cannot write the quotas of %q: %w", entity, err)
		}
		if tx.Succeeded {
			return tx.Header.Revision, nil
		}
	}
}
