package metadata

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestBrokerConfigsPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.BrokerConfigs("1"); err != nil || len(m) != 0 {
		t.Fatalf("before any write: %v %v", m, err)
	}
	const k = "remote.log.manager.fetch.max.bytes.per.second"
	if err := s.SetBrokerConfigs("1", map[string]string{k: "1000"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBrokerConfigs("", map[string]string{k: "2000"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for ent, want := range map[string]string{"1": "1000", "": "2000"} {
		m, err := s.BrokerConfigs(ent)
		if err != nil || m[k] != want || len(m) != 1 {
			t.Errorf("entity %q: %v %v, want %s=%s", ent, m, err, k, want)
		}
	}
	if err := s.SetBrokerConfigs("1", nil); err != nil {
		t.Fatal(err)
	}
	if m, err := s.BrokerConfigs("1"); err != nil || len(m) != 0 {
		t.Fatalf("cleared: %v %v", m, err)
	}
	// A damaged value is reported, not served.
	s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBrokerConfigs).Put(brokerConfigsKey(""), []byte{1, 2, 3, 4, 5, 6})
	})
	if _, err := s.BrokerConfigs(""); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt value: %v", err)
	}
}
