package metadata

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestClientQuotasPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := s.ClientQuotas(); err != nil || len(q) != 0 {
		t.Fatalf("fresh store: %v, %v", q, err)
	}
	set := func(entity string, vals map[string]float64) {
		t.Helper()
		if err := s.AlterClientQuota(entity, func(map[string]float64) (map[string]float64, error) { return vals, nil }); err != nil {
			t.Fatal(err)
		}
	}
	set("client-id=slow", map[string]float64{"producer_byte_rate": 1024, "request_percentage": 12.5})
	set("user=<default>", map[string]float64{"consumer_byte_rate": 2048})
	set("user=<default>", nil) // removes
	boom := errors.New("refused")
	if err := s.AlterClientQuota("client-id=slow", func(map[string]float64) (map[string]float64, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if err := s.AlterClientQuota("", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty entity: %v", err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := s.ClientQuotas()
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q["client-id=slow"]["producer_byte_rate"] != 1024 || q["client-id=slow"]["request_percentage"] != 12.5 {
		t.Fatalf("after reopen: %v", q)
	}
}
