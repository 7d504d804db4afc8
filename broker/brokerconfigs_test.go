package broker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeBrokerKey returns key's value and source as DescribeConfigs shows
// it for broker (-1: the default resource, name "").
func describeBrokerKey(t *testing.T, adm *kadm.Client, broker int32, key string) (string, kmsg.ConfigSource) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	var (
		rcs kadm.ResourceConfigs
		err error
	)
	if broker < 0 {
		rcs, err = adm.DescribeBrokerConfigs(ctx)
	} else {
		rcs, err = adm.DescribeBrokerConfigs(ctx, broker)
	}
	if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
		t.Fatalf("DescribeBrokerConfigs: %v %+v", err, rcs)
	}
	for _, c := range rcs[0].Configs {
		if c.Key == key {
			return c.MaybeValue(), c.Source
		}
	}
	t.Fatalf("%s not described", key)
	return "", 0
}

// TestDynamicFetchLimit: the KIP-956 limits are dynamic broker configs.
// IncrementalAlterConfigs on the broker's id and AlterConfigs on the default
// resource set them; DescribeConfigs shows them with their sources; the tier
// applies them at once; they survive a restart; deleting the broker's value
// falls back to the default, then to the static value.
func TestDynamicFetchLimit(t *testing.T) {
	tb := startBroker(t, fetchLimitKey+"=5000000")
	adm := tb.admin()
	ctx := ctxT(t, 20*time.Second)

	if v, src := describeBrokerKey(t, adm, 0, fetchLimitKey); v != "5000000" || src != kmsg.ConfigSourceStaticBrokerConfig {
		t.Fatalf("static: %s %v", v, src)
	}
	// validate_only: nothing changes.
	rs, err := adm.ValidateAlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: fetchLimitKey, Value: kadm.StringPtr("1000")}}, 0)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("validate: %v %+v", err, rs)
	}
	if got := tb.mgr.FetchMaxBytesPerSecond(); got != 5000000 {
		t.Fatalf("validate_only changed the limit to %d", got)
	}
	// Incremental SET on this broker.
	rs, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: fetchLimitKey, Value: kadm.StringPtr("1048576")}}, 0)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("IncrementalAlterConfigs: %v %+v", err, rs)
	}
	if got := tb.mgr.FetchMaxBytesPerSecond(); got != 1048576 {
		t.Fatalf("limit in force %d, want 1048576 at once", got)
	}
	if v, src := describeBrokerKey(t, adm, 0, fetchLimitKey); v != "1048576" || src != kmsg.ConfigSourceDynamicBrokerConfig {
		t.Fatalf("after the per-broker SET: %s %v", v, src)
	}
	// AlterConfigs (whole set) on the cluster-wide default.
	rs, err = adm.AlterBrokerConfigsState(ctx, []kadm.AlterConfig{
		{Name: fetchLimitKey, Value: kadm.StringPtr("2097152")},
		{Name: copyLimitKey, Value: kadm.StringPtr("3145728")},
	})
	if err != nil || rs[0].Err != nil {
		t.Fatalf("AlterConfigs on the default: %v %+v", err, rs)
	}
	if got := tb.mgr.CopyMaxBytesPerSecond(); got != 3145728 {
		t.Fatalf("copy limit %d, want the default's 3145728", got)
	}
	if got := tb.mgr.FetchMaxBytesPerSecond(); got != 1048576 {
		t.Fatalf("fetch limit %d: the broker's value must win over the default", got)
	}
	if v, src := describeBrokerKey(t, adm, -1, copyLimitKey); v != "3145728" || src != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("default resource: %s %v", v, src)
	}
	// The default resource shows the default, not this broker's own value.
	if v, src := describeBrokerKey(t, adm, -1, fetchLimitKey); v != "2097152" || src != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("default resource: %s %v", v, src)
	}
	// Synonyms list every source, strongest first.
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = resourceBroker, "0", []string{fetchLimitKey}
	req.Resources, req.IncludeSynonyms = append(req.Resources, rr), true
	dresp, err := req.RequestWith(ctx, tb.client())
	if err != nil || len(dresp.Resources) != 1 || len(dresp.Resources[0].Configs) != 1 {
		t.Fatalf("DescribeConfigs with synonyms: %v %+v", err, dresp)
	}
	var srcs []kmsg.ConfigSource
	for _, syn := range dresp.Resources[0].Configs[0].ConfigSynonyms {
		srcs = append(srcs, syn.Source)
	}
	if want := []kmsg.ConfigSource{kmsg.ConfigSourceDynamicBrokerConfig, kmsg.ConfigSourceDynamicDefaultBrokerConfig,
		kmsg.ConfigSourceStaticBrokerConfig, kmsg.ConfigSourceDefaultConfig}; !slices.Equal(srcs, want) {
		t.Fatalf("synonyms %v, want %v", srcs, want)
	}

	tb.restart()
	adm = tb.admin()
	if got, cp := tb.mgr.FetchMaxBytesPerSecond(), tb.mgr.CopyMaxBytesPerSecond(); got != 1048576 || cp != 3145728 {
		t.Fatalf("after a restart: fetch %d copy %d, want 1048576 and 3145728", got, cp)
	}
	if v, src := describeBrokerKey(t, adm, 0, fetchLimitKey); v != "1048576" || src != kmsg.ConfigSourceDynamicBrokerConfig {
		t.Fatalf("after a restart: %s %v", v, src)
	}
	// DELETE the broker's value: the default applies.
	ctx = ctxT(t, 20*time.Second)
	rs, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: fetchLimitKey}}, 0)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("DELETE: %v %+v", err, rs)
	}
	if got := tb.mgr.FetchMaxBytesPerSecond(); got != 2097152 {
		t.Fatalf("after DELETE: %d, want the default's 2097152", got)
	}
	if v, src := describeBrokerKey(t, adm, 0, fetchLimitKey); v != "2097152" || src != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("after DELETE: %s %v", v, src)
	}
	// An empty AlterConfigs on the default clears it: the static value.
	rs, err = adm.AlterBrokerConfigsState(ctx, nil)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("clearing the default: %v %+v", err, rs)
	}
	if got, cp := tb.mgr.FetchMaxBytesPerSecond(), tb.mgr.CopyMaxBytesPerSecond(); got != 5000000 || cp > 0 {
		t.Fatalf("cleared: fetch %d copy %d, want the static 5000000 and unlimited", got, cp)
	}
}

// TestDynamicBrokerConfigRefusals: a static key is refused with
// INVALID_REQUEST in Kafka's words, naming it; a bad value with
// INVALID_CONFIG naming the key and the allowed range; another broker's id
// with INVALID_REQUEST. Nothing is applied.
func TestDynamicBrokerConfigRefusals(t *testing.T) {
	tb := startBroker(t)
	cl := tb.client()
	ctx := ctxT(t, 20*time.Second)
	for _, tc := range []struct {
		name    string
		configs []kadm.AlterConfig
		broker  []int32
		code    error
		says    []string
	}{
		{"static key", []kadm.AlterConfig{{Name: "log.retention.ms", Value: kadm.StringPtr("1000")}}, []int32{0},
			kerr.InvalidRequest, []string{"Cannot update these configs dynamically: log.retention.ms", fetchLimitKey}},
		{"static key among dynamic ones", []kadm.AlterConfig{{Name: fetchLimitKey, Value: kadm.StringPtr("1000")}, {Op: kadm.DeleteConfig, Name: "num.partitions"}}, nil,
			kerr.InvalidRequest, []string{"Cannot update these configs dynamically: num.partitions"}},
		{"zero", []kadm.AlterConfig{{Name: fetchLimitKey, Value: kadm.StringPtr("0")}}, []int32{0},
			kerr.InvalidConfig, []string{fetchLimitKey, "-1 (unlimited) or 1 to 9223372036854775807"}},
		{"not a number", []kadm.AlterConfig{{Name: copyLimitKey, Value: kadm.StringPtr("fast")}}, nil,
			kerr.InvalidConfig, []string{copyLimitKey, "not an integer"}},
		{"unknown key", []kadm.AlterConfig{{Name: "no.such.key", Value: kadm.StringPtr("1")}}, []int32{0},
			kerr.InvalidConfig, []string{"no.such.key"}},
		{"other broker", []kadm.AlterConfig{{Name: fetchLimitKey, Value: kadm.StringPtr("1000")}}, []int32{7},
			kerr.InvalidRequest, []string{"unknown broker 7"}},
	} {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType = resourceBroker
		if len(tc.broker) > 0 {
			rr.ResourceName = "7"
			if tc.broker[0] == 0 {
				rr.ResourceName = "0"
			}
		}
		for _, c := range tc.configs {
			rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			rc.Name, rc.Value, rc.Op = c.Name, c.Value, kmsg.IncrementalAlterConfigOp(c.Op)
			rr.Configs = append(rr.Configs, rc)
		}
		req.Resources = append(req.Resources, rr)
		kr, err := cl.Broker(0).Request(ctx, req) // to this broker, whatever the name says
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := kr.(*kmsg.IncrementalAlterConfigsResponse).Resources[0]
		if err := kerr.ErrorForCode(got.ErrorCode); err != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
		msg := strOrNil(got.ErrorMessage)
		for _, s := range tc.says {
			if !strings.Contains(msg, s) {
				t.Errorf("%s: message %q does not say %q", tc.name, msg, s)
			}
		}
	}
	if got := tb.mgr.FetchMaxBytesPerSecond(); got > 0 {
		t.Fatalf("a refused alteration set the fetch limit to %d", got)
	}
}
