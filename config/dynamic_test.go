package config

import (
	"strings"
	"testing"
)

func TestCheckDynamicBroker(t *testing.T) {
	const fetch = "remote.log.manager.fetch.max.bytes.per.second"
	got, err := CheckDynamicBroker(map[string]string{fetch: " 1048576 ", "remote.log.manager.copy.max.bytes.per.second": "-1"})
	if err != nil || got[fetch] != "1048576" {
		t.Fatalf("valid: %v %v", got, err)
	}
	for _, tc := range []struct {
		cfgs   map[string]string
		static bool
		want   []string
	}{
		{map[string]string{fetch: "0"}, false, []string{fetch, "0 would stop remote reads", "-1 (unlimited) or 1 to 9223372036854775807"}},
		{map[string]string{fetch: "-2"}, false, []string{fetch, "out of range"}},
		{map[string]string{fetch: "x"}, false, []string{fetch, "not an integer"}},
		{map[string]string{"log.retention.ms": "1", fetch: "1"}, true, []string{"Cannot update these configs dynamically: log.retention.ms", fetch}},
		{map[string]string{"no.such.key": "1"}, false, []string{`unknown key "no.such.key"`}},
	} {
		_, err := CheckDynamicBroker(tc.cfgs)
		if err == nil {
			t.Fatalf("%v accepted", tc.cfgs)
		}
		if (len(err.Static) > 0) != tc.static {
			t.Errorf("%v: static %v", tc.cfgs, err.Static)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q does not say %q", tc.cfgs, err.Error(), w)
			}
		}
	}
}

func TestDescribeBrokerDynamic(t *testing.T) {
	const fetch, cp = "remote.log.manager.fetch.max.bytes.per.second", "remote.log.manager.copy.max.bytes.per.second"
	b, err := Load("", nil, []string{fetch + "=1000"})
	if err != nil {
		t.Fatal(err)
	}
	d := DynamicBroker{PerBroker: map[string]string{fetch: "500"}, Default: map[string]string{fetch: "700", cp: "900"}}
	seen := 0
	for _, e := range b.DescribeBrokerDynamic(d) {
		switch e.Name {
		case fetch:
			seen++
			if e.Value != "500" || e.Source != SourceDynamicBroker || e.ReadOnly {
				t.Errorf("%s: %+v", fetch, e)
			}
		case cp:
			seen++
			if e.Value != "900" || e.Source != SourceDynamicDefault || e.ReadOnly {
				t.Errorf("%s: %+v", cp, e)
			}
		case "log.retention.ms":
			seen++
			if !e.ReadOnly {
				t.Errorf("a static key is not read-only: %+v", e)
			}
		}
	}
	if seen != 3 {
		t.Fatalf("saw %d of the 3 keys", seen)
	}
	if got := b.DynamicInt64(d, fetch); got != 500 {
		t.Errorf("value in force %d, want 500", got)
	}
	if got := b.DynamicInt64(DynamicBroker{}, fetch); got != 1000 {
		t.Errorf("without dynamic configs %d, want the static 1000", got)
	}
	syn := b.BrokerSynonyms(d, fetch)
	if len(syn) != 4 || syn[0].Source != SourceDynamicBroker || syn[1].Source != SourceDynamicDefault || syn[2] != (Synonym{"1000", SourceStaticBroker}) || syn[3] != (Synonym{"-1", SourceDefault}) {
		t.Errorf("synonyms %+v", syn)
	}
}
