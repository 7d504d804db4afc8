package broker

// DescribeClientQuotas (key 48, v0-1) and AlterClientQuotas (key 49, v0-1),
// KIP-546.
//
// An entity is a user, a client id, or both, each named or the default (a
// null name). Its keys are producer_byte_rate and consumer_byte_rate (whole
// numbers) and request_percentage, each above 0; quota.go enforces them.
// AlterClientQuotas validates an entry whole (Kafka's messages: "Invalid
// configuration key X", "Quota X must be greater than 0", ...) and applies
// it in one write, the bbolt store on one node and etcd in a cluster (where
// the response leaves once this broker applied it); remove drops a key, and
// an entity left with no key is gone. validate_only checks and writes
// nothing. DescribeClientQuotas filters with EXACT (a name), DEFAULT and ANY
// match types, strict or not, as Kafka's ClientQuotaControlManager does.
// Entities of type ip (connection_creation_rate) are not served.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errQuota is an invalid quota request; its message is Kafka's.
var errQuota = errors.New("invalid client quota")

func quotaErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errQuota, fmt.Sprintf(format, args...))
}

// entityOf validates an entity's components as Kafka does.
func entityOf(comps []kmsg.AlterClientQuotasRequestEntryEntity) (quotaEntity, error) {
	var e quotaEntity
	if len(comps) == 0 {
		return e, quotaErr("Invalid empty client quota entity")
	}
	for _, c := range comps {
		n := entityName{set: true, def: c.Name == nil}
		if c.Name != nil {
			n.name = *c.Name
		}
		var slot *entityName
		switch c.Type {
		case entityUser:
			slot = &e.user
		case entityClientID:
			slot = &e.client
		case entityIP:
			return e, quotaErr("ip quotas (connection_creation_rate) are not served by this broker")
		default:
			return e, quotaErr("Unhandled client quota entity type: %s", c.Type)
		}
		if slot.set {
			return e, quotaErr("Invalid client quota entity, duplicate entity entry %s", c.Type)
		}
		if c.Name != nil && *c.Name == "" {
			return e, quotaErr("Empty %s not supported", c.Type)
		}
		*slot = n
	}
	return e, nil
}

// checkQuotaValue is Kafka's validateQuotaKeyValue for the keys served.
func checkQuotaValue(key string, v float64) error {
	switch key {
	case quotaKeys[quotaProduce], quotaKeys[quotaFetch], quotaKeys[quotaRequest]:
	case "controller_mutation_rate":
		return quotaErr("%s is not served by this broker (its admin requests are not throttled)", key)
	default:
		return quotaErr("Invalid configuration key %s", key)
	}
	if !(v > 0) || math.IsInf(v, 1) {
		return quotaErr("Quota %s must be greater than 0", key)
	}
	if key == quotaKeys[quotaRequest] { // a DOUBLE
		return nil
	}
	if v > math.MaxInt64 { // a LONG
		return quotaErr("Proposed value for %s is too large for a LONG.", key)
	}
	if math.Abs(math.Mod(v, 1)) > 1e-6 {
		return quotaErr("%s cannot be a fractional value.", key)
	}
	return nil
}

func (s *Server) handleAlterClientQuotas(ctx context.Context, _ *conn, req *kmsg.AlterClientQuotasRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrAlterClientQuotasResponse()
	resp.Version = req.Version
	seen := map[string]bool{}
	for _, entry := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		for _, c := range entry.Entity {
			rc := kmsg.NewAlterClientQuotasResponseEntryEntity()
			rc.Type, rc.Name = c.Type, c.Name
			re.Entity = append(re.Entity, rc)
		}
		err := s.alterQuotaEntry(ctx, entry, seen, req.ValidateOnly)
		switch {
		case err == nil:
		case errors.Is(err, errQuota):
			msg := err.Error()[len(errQuota.Error())+2:]
			re.ErrorCode, re.ErrorMessage = kerr.InvalidRequest.Code, &msg
		default:
			re.ErrorCode, re.ErrorMessage = adminError(err)
		}
		resp.Entries = append(resp.Entries, re)
	}
	return resp, nil
}

// alterQuotaEntry validates and applies one entry.
func (s *Server) alterQuotaEntry(ctx context.Context, entry kmsg.AlterClientQuotasRequestEntry, seen map[string]bool, validateOnly bool) error {
	e, err := entityOf(entry.Entity)
	if err != nil {
		return err
	}
	key := e.key()
	if seen[key] {
		return quotaErr("Ignoring duplicate entity %s", key)
	}
	seen[key] = true
	ops := map[string]*float64{} // nil: remove
	for _, op := range entry.Ops {
		if _, dup := ops[op.Key]; dup {
			return quotaErr("Duplicate quota key %s not updating quota for this entity %s", op.Key, key)
		}
		if op.Remove {
			ops[op.Key] = nil
			continue
		}
		if err := checkQuotaValue(op.Key, op.Value); err != nil {
			return err
		}
		ops[op.Key] = &op.Value
	}
	if validateOnly {
		return nil
	}
	apply := func(cur map[string]float64) (map[string]float64, error) {
		next := maps.Clone(cur)
		if next == nil {
			next = map[string]float64{}
		}
		for k, v := range ops {
			if v == nil {
				delete(next, k)
			} else {
				next[k] = *v
			}
		}
		return next, nil
	}
	return s.storeQuota(ctx, key, apply)
}

// storeQuota writes one entity's quotas: etcd in a cluster (applied here
// before it returns), the metadata store on one node.
func (s *Server) storeQuota(ctx context.Context, key string, apply func(map[string]float64) (map[string]float64, error)) error {
	if s.clustered() {
		ctx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		rev, err := s.cl.AlterClientQuota(ctx, key, apply)
		if err != nil {
			return err
		}
		return s.applied(ctx, rev)
	}
	var next map[string]float64
	err := s.meta.AlterClientQuota(key, func(cur map[string]float64) (map[string]float64, error) {
		var err error
		next, err = apply(cur)
		return next, err
	})
	if err != nil {
		return err
	}
	s.quotas.setEntity(key, next)
	return nil
}

func (s *Server) handleDescribeClientQuotas(_ context.Context, _ *conn, req *kmsg.DescribeClientQuotasRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrDescribeClientQuotasResponse()
	resp.Version = req.Version
	fail := func(code int16, format string, args ...any) (kmsg.Response, error) {
		msg := fmt.Sprintf(format, args...)
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp, nil
	}
	// exact: the type must have this name (nil: the default); any: the
	// type must be present.
	exact := map[string]*string{}
	present := map[string]bool{}
	for _, c := range req.Components {
		if c.EntityType == "" {
			return fail(kerr.InvalidRequest.Code, "Invalid empty entity type.")
		}
		if _, dup := exact[c.EntityType]; dup || present[c.EntityType] {
			return fail(kerr.InvalidRequest.Code, "Entity type %s cannot appear more than once in the filter.", c.EntityType)
		}
		if c.EntityType != entityUser && c.EntityType != entityClientID && c.EntityType != entityIP {
			return fail(kerr.UnsupportedVersion.Code, "Unsupported entity type %s", c.EntityType)
		}
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if c.Match == nil {
				exact[c.EntityType] = nil
			} else {
				name := *c.Match
				exact[c.EntityType] = &name
			}
		case kmsg.QuotasMatchTypeDefault:
			exact[c.EntityType] = nil
		case kmsg.QuotasMatchTypeAny:
			present[c.EntityType] = true
		default:
			return fail(kerr.InvalidRequest.Code, "Unexpected match type: %d", c.MatchType)
		}
	}
	_, ipExact := exact[entityIP]
	if ipExact || present[entityIP] {
		_, u := exact[entityUser]
		_, cid := exact[entityClientID]
		if u || cid || present[entityUser] || present[entityClientID] {
			return fail(kerr.InvalidRequest.Code, "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.")
		}
	}
	configs := s.quotas.configs()
	keys := slices.Sorted(maps.Keys(configs))
	for _, k := range keys {
		e, ok := parseEntityKey(k)
		if !ok {
			continue
		}
		comps := map[string]entityName{}
		if e.user.set {
			comps[entityUser] = e.user
		}
		if e.client.set {
			comps[entityClientID] = e.client
		}
		if !quotaMatches(comps, exact, present, req.Strict) {
			continue
		}
		entry := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, typ := range []string{entityUser, entityClientID} {
			n, ok := comps[typ]
			if !ok {
				continue
			}
			ce := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			ce.Type = typ
			if !n.def {
				name := n.name
				ce.Name = &name
			}
			entry.Entity = append(entry.Entity, ce)
		}
		vals := configs[k]
		names := make([]string, 0, len(vals))
		for name := range vals {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = name, vals[name]
			entry.Values = append(entry.Values, v)
		}
		resp.Entries = append(resp.Entries, entry)
	}
	return resp, nil
}

// quotaMatches is Kafka's filter: strict wants exactly the filtered types;
// every exact component must be present with that name (or the default);
// every any component must be present.
func quotaMatches(comps map[string]entityName, exact map[string]*string, present map[string]bool, strict bool) bool {
	if strict && len(comps) != len(exact)+len(present) {
		return false
	}
	for typ, want := range exact {
		n, ok := comps[typ]
		if !ok {
			return false
		}
		if (want == nil) != n.def || (want != nil && *want != n.name) {
			return false
		}
	}
	for typ := range present {
		if _, ok := comps[typ]; !ok {
			return false
		}
	}
	return true
}
