package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Dynamic broker configs, as in Kafka: a few broker keys may be changed while
// the broker runs, by AlterConfigs or IncrementalAlterConfigs on the broker
// resource, for one broker (its id as the name) or as the cluster-wide
// default (an empty name). The broker stores them (bbolt) and applies them
// at once; a broker-level value wins over the default, which wins over the
// static value (server.properties, STRATA_ variables, --set). Today the
// dynamic keys are the bandwidth limits of KIP-956.

// DynamicBroker holds the dynamic broker configs in force, canonical values
// by key: PerBroker for this broker's id, Default for the empty name.
type DynamicBroker struct {
	PerBroker map[string]string
	Default   map[string]string
}

// DynamicBrokerKeys lists the keys that may be changed at run time, sorted.
func DynamicBrokerKeys() []string {
	var out []string
	for _, s := range brokerSpecs {
		if s.dynamic {
			out = append(out, s.name)
		}
	}
	slices.Sort(out)
	return out
}

// DynamicError is CheckDynamicBroker's refusal. The broker answers a static
// key with INVALID_REQUEST (as Kafka does), an unknown key or a bad value
// with INVALID_CONFIG.
type DynamicError struct {
	Err *Error
	// Static lists keys that exist but are not dynamic (empty for an
	// unknown key or a bad value).
	Static []string
}

func (e *DynamicError) Error() string { return e.Err.Error() }

// CheckDynamicBrokerKeys refuses names that are not dynamic broker keys:
// static ones all together, in Kafka's words ("Cannot update these configs
// dynamically: ..."), else the first unknown one.
func CheckDynamicBrokerKeys(names []string) *DynamicError {
	var static []string
	for _, k := range slices.Sorted(slices.Values(names)) {
		s, ok := brokerByName[k]
		if !ok {
			return &DynamicError{Err: unknownBrokerKey(k)}
		}
		if !s.dynamic && !slices.Contains(static, k) {
			static = append(static, k)
		}
	}
	if len(static) > 0 {
		return &DynamicError{Static: static, Err: &Error{Key: static[0], Msg: fmt.Sprintf(
			"Cannot update these configs dynamically: %s (static broker configs: change server.properties, STRATA_ variables or --set and restart; the dynamic ones are %s)",
			strings.Join(static, ", "), strings.Join(DynamicBrokerKeys(), ", "))}}
	}
	return nil
}

// CheckDynamicBroker validates a whole set of dynamic broker configs and
// returns it in canonical form: its keys by CheckDynamicBrokerKeys, then
// each value, refused with the key and what is allowed.
func CheckDynamicBroker(cfgs map[string]string) (map[string]string, *DynamicError) {
	if err := CheckDynamicBrokerKeys(slices.Collect(maps.Keys(cfgs))); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cfgs))
	for k, v := range cfgs {
		canon, err := brokerByName[k].parse(k, v)
		if err != nil {
			if brokerByName[k].sensitive {
				hideValue(err, v)
			}
			return nil, &DynamicError{Err: err}
		}
		out[k] = canon
	}
	return out, nil
}

// DynamicValue is a dynamic broker key's value in force: the broker's own
// dynamic value, else the dynamic default, else the static one.
func (b *Broker) DynamicValue(d DynamicBroker, name string) string {
	if v, ok := d.PerBroker[name]; ok {
		return v
	}
	if v, ok := d.Default[name]; ok {
		return v
	}
	return b.brokerValue(name)
}

// DynamicInt64 is DynamicValue of an integer key (0 if it does not parse,
// which a stored value validated by CheckDynamicBroker always does).
func (b *Broker) DynamicInt64(d DynamicBroker, name string) int64 {
	n, _ := strconv.ParseInt(b.DynamicValue(d, name), 10, 64)
	return n
}

// DescribeBrokerDynamic is DescribeBroker with the dynamic configs in force:
// a dynamic key set for this broker shows DYNAMIC_BROKER_CONFIG, one set as
// the default DYNAMIC_DEFAULT_BROKER_CONFIG. With synonyms, Kafka lists
// every source of a key, strongest first: Synonyms does.
func (b *Broker) DescribeBrokerDynamic(d DynamicBroker) []Entry {
	out := b.DescribeBroker()
	for i, e := range out {
		if v, ok := d.PerBroker[e.Name]; ok {
			out[i].Value, out[i].Source = v, SourceDynamicBroker
		} else if v, ok := d.Default[e.Name]; ok {
			out[i].Value, out[i].Source = v, SourceDynamicDefault
		}
	}
	return out
}

// Synonym is one source of a broker key's value, for DescribeConfigs with
// IncludeSynonyms.
type Synonym struct {
	Value  string
	Source Source
}

// BrokerSynonyms lists the sources of a broker key that hold a value,
// strongest first: this broker's dynamic value, the dynamic default, the
// static value, the default.
func (b *Broker) BrokerSynonyms(d DynamicBroker, name string) []Synonym {
	var out []Synonym
	if v, ok := d.PerBroker[name]; ok {
		out = append(out, Synonym{v, SourceDynamicBroker})
	}
	if v, ok := d.Default[name]; ok {
		out = append(out, Synonym{v, SourceDynamicDefault})
	}
	if _, ok := b.values[name]; ok {
		out = append(out, Synonym{b.brokerValue(name), SourceStaticBroker})
	}
	if s, ok := brokerByName[name]; ok {
		out = append(out, Synonym{s.def, SourceDefault})
	}
	return out
}
