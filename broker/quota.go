package broker

// Client quota enforcement, as Kafka's ClientQuotaManager (KIP-13, KIP-55,
// KIP-124, KIP-219).
//
// A quota is a rate: producer_byte_rate (bytes of Produce requests per
// second), consumer_byte_rate (record bytes of Fetch responses per second)
// or request_percentage (handler time, as a percentage of one goroutine's
// second). Each is measured per sensor over quota.window.num samples of
// quota.window.size.seconds (Kafka's Rate over a SampledStat: the elapsed
// time counts at least quota.window.num-1 whole windows, so a new client
// cannot burst past the quota in its first second).
//
// Which quota applies to a request, and which sensor it shares, is Kafka's
// precedence, the first entity that sets the key:
//
//	user=U, client-id=C          sensor (U, C)
//	user=U, client-id=<default>  sensor (U, C)
//	user=U                       sensor (U, *)
//	user=<default>, client-id=C  sensor (U, C)
//	user=<default>, client-id=<default>  sensor (U, C)
//	user=<default>               sensor (U, *)
//	client-id=C                  sensor (*, C)
//	client-id=<default>          sensor (*, C)
//
// so a default gives each user or client id its own budget, and a replay can
// be given its own by client id. Strata has no SASL: every connection's user
// is ANONYMOUS.
//
// When a recorded value takes the rate over the quota, the throttle time is
// Kafka's: (rate - quota) / quota * window, the time the rate needs to fall
// back to the quota if nothing more is recorded (request_percentage's is
// bounded by one window). The response carries it in throttle_time_ms and,
// for versions that tell the client to back off after the response (KIP-219),
// the broker stops reading the connection for that long after writing it;
// for older versions it delays the response instead. A throttled Fetch is
// answered without records, and its bytes are not counted (Kafka's
// "unrecord"); a fetch asks for at most what one quota window allows.
// A follower's Fetch is exempt.

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// quotaType is the quantity a quota limits.
type quotaType int

const (
	quotaProduce quotaType = iota
	quotaFetch
	quotaRequest
	numQuotaTypes
)

// quotaKeys are the quota config keys, by type.
var quotaKeys = [numQuotaTypes]string{"producer_byte_rate", "consumer_byte_rate", "request_percentage"}

// quotaTypeNames are Kafka's quota type names (the metric label).
var quotaTypeNames = [numQuotaTypes]string{"produce", "fetch", "request"}

// Entity component types.
const (
	entityUser     = "user"
	entityClientID = "client-id"
	entityIP       = "ip"
)

// anonymousUser is the user of every connection: Strata has no SASL, and
// Kafka's principal of an unauthenticated connection is User:ANONYMOUS.
const anonymousUser = "ANONYMOUS"

// defaultName is how a default (null) name appears in an entity's key; a
// real name is query-escaped, so it never reads as this.
const defaultName = "<default>"

// entityName is one component of a quota entity.
type entityName struct {
	set  bool // the entity has this component
	def  bool // the default: a null name
	name string
}

// quotaEntity is a user, a client id, or both, each named or the default.
type quotaEntity struct {
	user, client entityName
}

// key is the entity's canonical form, the key it is stored under:
// "client-id=C", "user=U" or "client-id=C,user=U", a default as <default>.
func (e quotaEntity) key() string {
	var parts []string
	add := func(typ string, n entityName) {
		if !n.set {
			return
		}
		if n.def {
			parts = append(parts, typ+"="+defaultName)
		} else {
			parts = append(parts, typ+"="+url.QueryEscape(n.name))
		}
	}
	add(entityClientID, e.client)
	add(entityUser, e.user)
	return strings.Join(parts, ",")
}

// parseEntityKey reverses key.
func parseEntityKey(k string) (quotaEntity, bool) {
	var e quotaEntity
	for _, p := range strings.Split(k, ",") {
		typ, v, ok := strings.Cut(p, "=")
		if !ok {
			return quotaEntity{}, false
		}
		n := entityName{set: true}
		if v == defaultName {
			n.def = true
		} else {
			name, err := url.QueryUnescape(v)
			if err != nil {
				return quotaEntity{}, false
			}
			n.name = name
		}
		switch {
		case typ == entityUser && !e.user.set:
			e.user = n
		case typ == entityClientID && !e.client.set:
			e.client = n
		default:
			return quotaEntity{}, false
		}
	}
	return e, e.user.set || e.client.set
}

func named(n string) entityName { return entityName{set: true, name: n} }

var defaulted = entityName{set: true, def: true}

// sensorKey names a rate: a quota type and the tags Kafka's default quota
// callback gives it ("" where the matched entity has no such component).
type sensorKey struct {
	typ          quotaType
	user, client string
}

// rateSample is one window of a rate.
type rateSample struct {
	start int64 // ms
	value float64
}

// rateStat is Kafka's Rate over a SampledStat: at most num samples of win
// ms each, the oldest reused when a new window starts.
type rateStat struct {
	samples []rateSample
	cur     int
	used    int64 // ms of the last record: idle sensors expire
}

func (r *rateStat) record(v float64, now int64, num int, win int64) {
	r.used = now
	if len(r.samples) == 0 {
		r.samples = append(r.samples, rateSample{start: now})
		r.cur = 0
	}
	if now-r.samples[r.cur].start >= win {
		r.cur = (r.cur + 1) % num
		if r.cur >= len(r.samples) {
			r.samples = append(r.samples, rateSample{start: now})
		} else {
			r.samples[r.cur] = rateSample{start: now}
		}
	}
	r.samples[r.cur].value += v
}

// measure is the rate per second at now, and the window (ms) it is taken
// over.
func (r *rateStat) measure(now int64, num int, win int64) (rate float64, windowMs int64) {
	if len(r.samples) == 0 {
		r.samples = append(r.samples, rateSample{start: now})
	}
	total := 0.0
	oldest := now
	for i := range r.samples {
		s := &r.samples[i]
		if now-s.start >= int64(num)*win { // obsolete
			*s = rateSample{start: now}
		}
		total += s.value
		oldest = min(oldest, s.start)
	}
	elapsed := now - oldest
	if full, minFull := elapsed/win, int64(num-1); full < minFull {
		elapsed += (minFull - full) * win
	}
	windowMs = max(elapsed, 1)
	return total / (float64(windowMs) / 1000), windowMs
}

// sensorExpiry is how long an idle sensor is kept (Kafka: an hour).
const sensorExpiry = time.Hour

// clientQuotas holds the quota configs this broker enforces (the store's
// on one node, etcd's in a cluster) and the sensors that measure them.
type clientQuotas struct {
	num   int
	winMs int64
	// any is whether any quota is set: without one, a request takes no lock.
	any atomic.Bool

	mu struct {
		sync.Mutex
		configs   map[string]map[string]float64 // entity key -> key -> value; never mutated, replaced
		sensors   map[sensorKey]*rateStat
		lastPrune int64
	}
}

func newClientQuotas(windowNum, windowSizeSeconds int64) *clientQuotas {
	q := &clientQuotas{num: int(windowNum), winMs: windowSizeSeconds * 1000}
	q.mu.configs = map[string]map[string]float64{}
	q.mu.sensors = map[sensorKey]*rateStat{}
	return q
}

// set replaces every config. The maps are kept, not copied: the caller does
// not change them afterwards.
func (q *clientQuotas) set(configs map[string]map[string]float64) {
	if configs == nil {
		configs = map[string]map[string]float64{}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mu.configs = configs
	q.any.Store(len(configs) > 0)
}

// setEntity replaces one entity's values (none: removes it).
func (q *clientQuotas) setEntity(key string, values map[string]float64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	next := make(map[string]map[string]float64, len(q.mu.configs)+1)
	for k, v := range q.mu.configs {
		next[k] = v
	}
	if len(values) == 0 {
		delete(next, key)
	} else {
		next[key] = values
	}
	q.mu.configs = next
	q.any.Store(len(next) > 0)
}

// configs is every entity's values; do not change the maps.
func (q *clientQuotas) configs() map[string]map[string]float64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.mu.configs
}

// resolveLocked finds the quota of type typ for (user, clientID) and its
// sensor, in Kafka's precedence; ok is false when no quota applies.
func (q *clientQuotas) resolveLocked(typ quotaType, user, clientID string) (limit float64, sk sensorKey, ok bool) {
	if len(q.mu.configs) == 0 {
		return 0, sensorKey{}, false
	}
	u, c := named(user), named(clientID)
	none := entityName{}
	order := [...]struct {
		e            quotaEntity
		tagU, tagCID bool
	}{
		{quotaEntity{u, c}, true, true},
		{quotaEntity{u, defaulted}, true, true},
		{quotaEntity{u, none}, true, false},
		{quotaEntity{defaulted, c}, true, true},
		{quotaEntity{defaulted, defaulted}, true, true},
		{quotaEntity{defaulted, none}, true, false},
		{quotaEntity{none, c}, false, true},
		{quotaEntity{none, defaulted}, false, true},
	}
	key := quotaKeys[typ]
	for _, o := range order {
		v, found := q.mu.configs[o.e.key()][key]
		if !found {
			continue
		}
		sk = sensorKey{typ: typ}
		if o.tagU {
			sk.user = user
		}
		if o.tagCID {
			sk.client = clientID
		}
		return v, sk, true
	}
	return 0, sensorKey{}, false
}

// record adds v to the client's rate of type typ at now and returns the
// throttle time in ms (0 when within its quota or none applies).
func (q *clientQuotas) record(typ quotaType, user, clientID string, v float64, now time.Time) int32 {
	if !q.any.Load() {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	limit, sk, ok := q.resolveLocked(typ, user, clientID)
	if !ok {
		return 0
	}
	ms := now.UnixMilli()
	q.pruneLocked(ms)
	r := q.mu.sensors[sk]
	if r == nil {
		r = &rateStat{}
		q.mu.sensors[sk] = r
	}
	r.record(v, ms, q.num, q.winMs)
	rate, windowMs := r.measure(ms, q.num, q.winMs)
	if rate <= limit {
		return 0
	}
	t := math.Round((rate - limit) / limit * float64(windowMs))
	if typ == quotaRequest {
		t = min(t, float64(q.winMs)) // ClientRequestQuotaManager's bound
	}
	return int32(min(t, math.MaxInt32))
}

// unrecord takes v back out of the client's rate (a throttled fetch sends
// no records).
func (q *clientQuotas) unrecord(typ quotaType, user, clientID string, v float64, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, sk, ok := q.resolveLocked(typ, user, clientID)
	if !ok {
		return
	}
	if r := q.mu.sensors[sk]; r != nil {
		r.record(-v, now.UnixMilli(), q.num, q.winMs)
	}
}

// maxInWindow is the most that can be recorded at once without a certain
// throttle: the quota times quota.window.num-1 windows (Kafka's
// maxValueInQuotaWindow); +Inf when no quota applies.
func (q *clientQuotas) maxInWindow(typ quotaType, user, clientID string) float64 {
	if !q.any.Load() {
		return math.Inf(1)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	limit, _, ok := q.resolveLocked(typ, user, clientID)
	if !ok {
		return math.Inf(1)
	}
	return limit * float64(q.num-1) * float64(q.winMs) / 1000
}

// pruneLocked drops sensors idle for sensorExpiry, at most once a minute.
func (q *clientQuotas) pruneLocked(now int64) {
	if now-q.mu.lastPrune < time.Minute.Milliseconds() {
		return
	}
	q.mu.lastPrune = now
	for k, r := range q.mu.sensors {
		if now-r.used > sensorExpiry.Milliseconds() {
			delete(q.mu.sensors, k)
		}
	}
}

// reqQuota is the quota state of the request a connection is handling.
type reqQuota struct {
	start    time.Time
	clientID string
	size     int64 // the request frame's bytes
	// throttle is the throttle decided so far, in ms, and the quota that
	// decided it; recorded: the request quota has been charged.
	throttle int32
	typ      quotaType
	recorded bool
	// waited is time the handler spent parked (a long poll, an ISR wait):
	// not charged to request_percentage, as Kafka charges only handler
	// thread time.
	waited  time.Duration
	exempt  bool // not charged to any quota (a follower's fetch)
	key     int16
	delayed bool // the handler delayed its response by the throttle already
}

// raise keeps the larger throttle and the quota it came from.
func (rq *reqQuota) raise(ms int32, typ quotaType) {
	if ms > rq.throttle {
		rq.throttle, rq.typ = ms, typ
	}
}

// chargeRequest records the handler time spent so far on the request quota,
// once per request.
func (s *Server) chargeRequest(c *conn, now time.Time) {
	if c.q.recorded {
		return
	}
	c.q.recorded = true
	if c.q.exempt || parksInCoordinator[c.q.key] {
		return
	}
	pct := float64(max(now.Sub(c.q.start)-c.q.waited, 0).Nanoseconds()) * 100 / 1e9
	c.q.raise(s.quotas.record(quotaRequest, anonymousUser, c.q.clientID, pct, now), quotaRequest)
}

// parksInCoordinator are the group APIs whose handlers wait in the group
// coordinator (a rebalance) for most of their time: Kafka charges only
// handler thread time, which for them is next to nothing.
var parksInCoordinator = map[int16]bool{11: true, 14: true} // JoinGroup, SyncGroup

// chargeProduce records a Produce request's bytes (Kafka counts the whole
// request).
func (s *Server) chargeProduce(c *conn) {
	c.q.raise(s.quotas.record(quotaProduce, anonymousUser, c.q.clientID, float64(c.q.size), time.Now()), quotaProduce)
}

// chargeFetch records the record bytes a Fetch response is about to carry
// and the handler time; when either throttles, the response goes without
// records (returned as a copy, so the caller still releases the originals)
// and its bytes are taken back out of the rate.
func (s *Server) chargeFetch(c *conn, out []fetchPart) []fetchPart {
	var n int64
	for i := range out {
		n += out[i].records.Len()
	}
	now := time.Now()
	c.q.raise(s.quotas.record(quotaFetch, anonymousUser, c.q.clientID, float64(n), now), quotaFetch)
	s.chargeRequest(c, now)
	if c.q.throttle == 0 {
		return out
	}
	s.quotas.unrecord(quotaFetch, anonymousUser, c.q.clientID, float64(n), now)
	empty := make([]fetchPart, len(out))
	copy(empty, out)
	for i := range empty {
		empty[i].records = nil
	}
	return empty
}

// fetchQuotaBytes bounds a fetch to what one quota window allows.
func (s *Server) fetchQuotaBytes(c *conn, maxBytes int64) int64 {
	m := s.quotas.maxInWindow(quotaFetch, anonymousUser, c.q.clientID)
	if m < float64(maxBytes) {
		return max(int64(m), 1)
	}
	return maxBytes
}

// quotaMetrics are the client quotas' metrics (listed in metrics.go).
type quotaMetrics struct {
	quotaThrottled       *prometheus.CounterVec
	quotaThrottleSeconds *prometheus.CounterVec
}

func newQuotaMetrics() quotaMetrics {
	return quotaMetrics{
		quotaThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_quota_throttled_total",
			Help: "Responses throttled by a client quota, by the quota type that set the throttle time."}, []string{"quota"}),
		quotaThrottleSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_quota_throttle_seconds_total",
			Help: "Throttle time imposed by client quotas, by quota type."}, []string{"quota"}),
	}
}

// throttled counts a throttle in the metrics.
func (s *Server) throttled(typ quotaType, ms int32) {
	s.metrics.quotaThrottled.WithLabelValues(quotaTypeNames[typ]).Inc()
	s.metrics.quotaThrottleSeconds.WithLabelValues(quotaTypeNames[typ]).Add(float64(ms) / 1000)
}

// pause waits d, or until the broker stops.
func (s *Server) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// quotaHooks observe muting in tests; nil in production.
type quotaHooks struct {
	muted   func(c *conn, d time.Duration) // the connection stops being read
	unmuted func(c *conn)                  // it is read again
	read    func(c *conn, key int16)       // a request was read from it
}

// finishQuota settles a request's throttle once its handler returned: the
// request quota is charged, resp (nil when the handler wrote its own or
// there is none) carries the throttle, and the result is how long to hold
// the connection and whether to do it before the response (delay: a version
// from before KIP-219) or after it (mute).
func (s *Server) finishQuota(c *conn, resp kmsg.Response) (throttle time.Duration, delay bool) {
	if c.q.exempt || c.q.delayed {
		return 0, false
	}
	s.chargeRequest(c, time.Now())
	ms := c.q.throttle
	if ms <= 0 {
		return 0, false
	}
	s.throttled(c.q.typ, ms)
	if resp == nil {
		return time.Duration(ms) * time.Millisecond, false
	}
	after := false
	if tr, ok := resp.(kmsg.ThrottleResponse); ok {
		if st, ok := resp.(kmsg.SetThrottleResponse); ok {
			st.SetThrottle(ms)
		}
		_, after = tr.Throttle()
	}
	return time.Duration(ms) * time.Millisecond, !after
}

// mute stops reading the connection for d: the client of a KIP-219 version
// was told to back off, and one that does not is held here.
func (c *conn) mute(d time.Duration) {
	if h := c.s.quotaHooks.Load(); h != nil {
		h.muted(c, d)
	}
	c.s.pause(d)
	if h := c.s.quotaHooks.Load(); h != nil {
		h.unmuted(c)
	}
}

// loadQuotas reads the quotas of a single node from its metadata store.
func (s *Server) loadQuotas() error {
	q, err := s.meta.ClientQuotas()
	if err != nil {
		return fmt.Errorf("broker: cannot read client quotas: %w", err)
	}
	s.quotas.set(q)
	return nil
}
