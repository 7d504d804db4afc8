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
	return alterMap(ctx, n, quotasPrefix+entity, "the quotas of "+entity, fn)
}

// AlterBrokerConfigs replaces the dynamic broker configs of entity (a
// broker id, or DefaultBrokerEntity) as AlterClientQuota does quotas.
func (n *Node) AlterBrokerConfigs(ctx context.Context, entity string, fn func(cur map[string]string) (map[string]string, error)) (int64, error) {
	if entity == "" {
		return 0, fmt.Errorf("cluster: empty broker config entity")
	}
	return alterMap(ctx, n, brokerCfgPrefix+entity, "the dynamic configs of broker "+entity, fn)
}

// alterMap replaces the JSON map at key with what fn returns for the
// current one, by compare-and-swap (an empty result deletes the key).
func alterMap[V any](ctx context.Context, n *Node, key, what string, fn func(cur map[string]V) (map[string]V, error)) (int64, error) {
	for {
		resp, err := n.client.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("cluster: cannot read %s: %w", what, err)
		}
		cur := map[string]V{}
		modRev := int64(0)
		if len(resp.Kvs) > 0 {
			if err := json.Unmarshal(resp.Kvs[0].Value, &cur); err != nil {
				return 0, fmt.Errorf("cluster: %s do not decode: %w", what, err)
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
				return 0, fmt.Errorf("cluster: %s do not encode: %w", what, err)
			}
			op = clientv3.OpPut(key, string(val))
		}
		tx, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(op).Commit()
		if err != nil {
			return 0, fmt.Errorf("cluster: cannot write %s: %w", what, err)
		}
		if tx.Succeeded {
			return tx.Header.Revision, nil
		}
	}
}
