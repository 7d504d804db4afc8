package metadata

import (
	"fmt"
	"maps"
	"math"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Client quotas (KIP-546): one value per quota entity, keyed by the entity's
// canonical name, which the broker builds and parses ("client-id=x,user=y");
// the store treats it as an opaque non-empty string.
//
// The bucket is created by the first AlterClientQuota, so a data directory
// that never had quotas reads as one with none.
var bucketClientQuotas = []byte("client_quotas")

func encodeQuota(entity string, values map[string]float64) []byte {
	var e enc
	e.str(entity)
	e.uvarint(uint64(len(values)))
	for _, k := range slices.Sorted(maps.Keys(values)) {
		e.str(k)
		e.i64(int64(math.Float64bits(values[k])))
	}
	return seal(e.b)
}

func decodeQuota(v []byte) (string, map[string]float64, error) {
	p, err := unseal(v)
	if err != nil {
		return "", nil, err
	}
	d := dec{b: p}
	entity := d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each entry takes at least nine bytes
		return "", nil, fmt.Errorf("quota count %d exceeds payload", n)
	}
	values := make(map[string]float64, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		values[k] = math.Float64frombits(uint64(d.i64()))
	}
	if err := d.done(); err != nil {
		return "", nil, err
	}
	return entity, values, nil
}

// AlterClientQuota replaces the quota values of entity with what fn returns
// for the current ones (empty when the entity has none), in one transaction;
// an empty result removes the entity. An error from fn aborts without a
// change and is returned as is.
func (s *Store) AlterClientQuota(entity string, fn func(cur map[string]float64) (map[string]float64, error)) error {
	if entity == "" {
		return fmt.Errorf("%w: empty quota entity", ErrInvalid)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketClientQuotas)
		if err != nil {
			return err
		}
		cur := map[string]float64{}
		if v := b.Get([]byte(entity)); v != nil {
			name, vals, err := decodeQuota(v)
			if err != nil {
				return corrupt(string(bucketClientQuotas), []byte(entity), err)
			}
			if name != entity {
				return corrupt(string(bucketClientQuotas), []byte(entity), fmt.Errorf("value names entity %q", name))
			}
			cur = vals
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if len(next) == 0 {
			return b.Delete([]byte(entity))
		}
		return b.Put([]byte(entity), encodeQuota(entity, next))
	})
}

// ClientQuotas returns every entity's quota values.
func (s *Store) ClientQuotas() (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClientQuotas)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			name, vals, err := decodeQuota(v)
			if err != nil {
				return corrupt(string(bucketClientQuotas), k, err)
			}
			if name != string(k) {
				return corrupt(string(bucketClientQuotas), k, fmt.Errorf("value names entity %q", name))
			}
			out[name] = vals
			return nil
		})
	})
	return out, err
}
