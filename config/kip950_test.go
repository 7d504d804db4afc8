package config

import (
	"errors"
	"strings"
	"testing"
)

// KIP-950's two topic keys: booleans defaulting to false, with no broker key
// (as in Kafka), shown by DescribeTopic as DEFAULT_CONFIG.
func TestKIP950KeysDefaultsAndTypes(t *testing.T) {
	b := mustLoad(t, "", nil, nil)
	eff, err := b.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	if eff.RemoteLogCopyDisable || eff.RemoteLogDeleteOnDisable {
		t.Fatalf("defaults: copy.disable %v delete.on.disable %v, want false false", eff.RemoteLogCopyDisable, eff.RemoteLogDeleteOnDisable)
	}
	eff, err = b.Resolve(map[string]string{"remote.log.copy.disable": "TRUE", "remote.log.delete.on.disable": " true "})
	if err != nil || !eff.RemoteLogCopyDisable || !eff.RemoteLogDeleteOnDisable {
		t.Fatalf("set: %+v %v", eff, err)
	}
	seen := 0
	for _, e := range b.DescribeTopic(map[string]string{"remote.log.delete.on.disable": "true"}) {
		switch e.Name {
		case "remote.log.copy.disable":
			seen++
			if e.Value != "false" || e.Source != SourceDefault || e.Type != TypeBoolean || e.Doc == "" {
				t.Errorf("describe %+v", e)
			}
		case "remote.log.delete.on.disable":
			seen++
			if e.Value != "true" || e.Source != SourceTopic || e.Type != TypeBoolean {
				t.Errorf("describe %+v", e)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("DescribeTopic lists %d of the two keys", seen)
	}
	for _, k := range []string{"remote.log.copy.disable", "remote.log.delete.on.disable"} {
		err := b.ValidateTopicConfigs(map[string]string{k: "yes"})
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != k || !strings.Contains(err.Error(), "true, false") {
			t.Errorf("%s=yes: %v", k, err)
		}
		// No broker key: in server.properties it is an error that says why.
		if _, err := Load("", nil, []string{k + "=true"}); err == nil || !strings.Contains(err.Error(), "no broker default") {
			t.Errorf("%s as a broker key: %v", k, err)
		}
	}
}

// Kafka (KAFKA-17236): with remote.log.copy.disable=true on a tiered topic,
// local.retention.* must be -2 or equal retention.*.
func TestCopyDisableNeedsLocalRetentionEqualToRetention(t *testing.T) {
	b := mustLoad(t, "", nil, []string{"log.retention.ms=100000"})
	ok := []map[string]string{
		{"remote.log.copy.disable": "true"},
		{"remote.log.copy.disable": "true", "local.retention.ms": "100000"},
		{"remote.log.copy.disable": "true", "retention.bytes": "5000", "local.retention.bytes": "5000"},
		{"remote.log.copy.disable": "true", "local.retention.ms": "10", "remote.storage.enable": "false"},
		{"remote.log.copy.disable": "false", "local.retention.ms": "10"},
	}
	for _, o := range ok {
		if err := b.ValidateTopicConfigs(o); err != nil {
			t.Errorf("%v: %v", o, err)
		}
	}
	bad := []struct {
		o   map[string]string
		key string
	}{
		{map[string]string{"remote.log.copy.disable": "true", "local.retention.ms": "10"}, "local.retention.ms"},
		{map[string]string{"remote.log.copy.disable": "true", "retention.bytes": "5000", "local.retention.bytes": "0"}, "local.retention.bytes"},
		{map[string]string{"remote.log.copy.disable": "true", "retention.ms": "-1", "local.retention.ms": "0"}, "local.retention.ms"},
	}
	for _, c := range bad {
		err := b.ValidateTopicConfigs(c.o)
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(err.Error(), "remote.log.copy.disable") {
			t.Errorf("%v: %v, want an error naming %s and remote.log.copy.disable", c.o, err, c.key)
		}
	}
}
