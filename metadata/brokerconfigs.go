package metadata

import (
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Dynamic broker configs (AlterConfigs on the broker resource): one value
// per entity, the broker's id or "" for the cluster-wide default. The bucket
// is created by the first write, so a database written before it opens
// unchanged.

var bucketBrokerConfigs = []byte("broker_configs")

// brokerConfigsKey is an entity's key: "broker/" then the entity (never
// empty, which bbolt refuses).
func brokerConfigsKey(entity string) []byte { return []byte("broker/" + entity) }

// BrokerConfigs returns the dynamic configs of entity (a broker id, or ""
// for the default); none stored: an empty map.
func (s *Store) BrokerConfigs(entity string) (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBrokerConfigs)
		if b == nil {
			return nil
		}
		k := brokerConfigsKey(entity)
		v := b.Get(k)
		if v == nil {
			return nil
		}
		m, err := decodeStringMap(v)
		if err != nil {
			return corrupt(string(bucketBrokerConfigs), k, err)
		}
		out = m
		return nil
	})
	return out, err
}

// SetBrokerConfigs replaces the dynamic configs of entity (nil or empty
// clears them).
func (s *Store) SetBrokerConfigs(entity string, cfg map[string]string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketBrokerConfigs)
		if err != nil {
			return err
		}
		k := brokerConfigsKey(entity)
		if len(cfg) == 0 {
			return b.Delete(k)
		}
		return b.Put(k, encodeStringMap(cfg))
	})
}

func encodeStringMap(m map[string]string) []byte {
	var e enc
	e.uvarint(uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.str(k)
		e.str(m[k])
	}
	return seal(e.b)
}

func decodeStringMap(v []byte) (map[string]string, error) {
	p, err := unseal(v)
	if err != nil {
		return nil, err
	}
	d := dec{b: p}
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each entry takes at least two bytes
		return nil, fmt.Errorf("entry count %d exceeds payload", n)
	}
	m := make(map[string]string, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		m[k] = d.str()
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return m, nil
}
