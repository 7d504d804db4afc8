package broker

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/freeport"
	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/internal/wire"
)

func sp(s string) *string { return &s }

// quotaEntity builds a kadm entity: "user" / "client-id" pairs, a nil name
// the default.
func kadmEntity(kv ...any) kadm.ClientQuotaEntity {
	var e kadm.ClientQuotaEntity
	for i := 0; i < len(kv); i += 2 {
		c := kadm.ClientQuotaEntityComponent{Type: kv[i].(string)}
		if n, ok := kv[i+1].(string); ok {
			c.Name = &n
		}
		e = append(e, c)
	}
	return e
}

// described renders a DescribeClientQuotas answer as sorted
// "{entity} key=value ..." lines.
func described(t *testing.T, adm *kadm.Client, strict bool, comps ...kadm.DescribeClientQuotaComponent) []string {
	t.Helper()
	qs, err := adm.DescribeClientQuotas(ctxT(t, 10*time.Second), strict, comps)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	var out []string
	for _, q := range qs {
		ent := slices.Clone(q.Entity)
		sort.Slice(ent, func(i, j int) bool { return ent[i].Type < ent[j].Type })
		line := kadm.ClientQuotaEntity(ent).String()
		vals := slices.Clone(q.Values)
		sort.Slice(vals, func(i, j int) bool { return vals[i].Key < vals[j].Key })
		for _, v := range vals {
			line += " " + v.String()
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

func alterQuotas(t *testing.T, adm *kadm.Client, validate bool, entries ...kadm.AlterClientQuotaEntry) kadm.AlteredClientQuotas {
	t.Helper()
	alter := adm.AlterClientQuotas
	if validate {
		alter = adm.ValidateAlterClientQuotas
	}
	res, err := alter(ctxT(t, 10*time.Second), entries)
	if err != nil {
		t.Fatalf("alter: %v", err)
	}
	return res
}

func setOp(key string, v float64) kadm.AlterClientQuotaOp {
	return kadm.AlterClientQuotaOp{Key: key, Value: v}
}

// kadm's client-quota calls round-trip: defaults and names, combinations,
// the three match types, strict, validate_only, remove, Kafka's validation,
// and a restart keeps what was set.
func TestClientQuotaAdminRoundTrip(t *testing.T) {
	tb := startBroker(t)
	adm := tb.admin()

	res := alterQuotas(t, adm, false,
		kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "slow"), Ops: []kadm.AlterClientQuotaOp{setOp("producer_byte_rate", 1024), setOp("consumer_byte_rate", 4096)}},
		kadm.AlterClientQuotaEntry{Entity: kadmEntity("user", nil), Ops: []kadm.AlterClientQuotaOp{setOp("consumer_byte_rate", 2048)}},
		kadm.AlterClientQuotaEntry{Entity: kadmEntity("user", "ANONYMOUS", "client-id", nil), Ops: []kadm.AlterClientQuotaOp{setOp("request_percentage", 12.5)}},
	)
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("alter %v: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	all := []string{
		"{client-id=<default>, user=ANONYMOUS} request_percentage=12.500000",
		"{client-id=slow} consumer_byte_rate=4096.000000 producer_byte_rate=1024.000000",
		"{user=<default>} consumer_byte_rate=2048.000000",
	}
	check := func(name string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	check("everything", described(t, adm, false), all)
	check("client-id exact", described(t, adm, false, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchName: sp("slow")}), all[1:2])
	check("user default", described(t, adm, false, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: kmsg.QuotasMatchTypeDefault}), all[2:])
	check("client-id any", described(t, adm, false, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: kmsg.QuotasMatchTypeAny}), all[:2])
	check("client-id any, strict", described(t, adm, true, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: kmsg.QuotasMatchTypeAny}), all[1:2])
	check("user exact and client-id default", described(t, adm, true,
		kadm.DescribeClientQuotaComponent{Type: "user", MatchName: sp("ANONYMOUS")},
		kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: kmsg.QuotasMatchTypeDefault}), all[:1])

	// A filter naming a type twice is refused whole, as Kafka refuses it.
	dup := []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: kmsg.QuotasMatchTypeAny}, {Type: "user", MatchType: kmsg.QuotasMatchTypeDefault}}
	if _, err := adm.DescribeClientQuotas(ctxT(t, 10*time.Second), false, dup); !errors.Is(err, kerr.InvalidRequest) {
		t.Errorf("describe with user twice: %v, want INVALID_REQUEST", err)
	}

	// validate_only checks and writes nothing.
	res = alterQuotas(t, adm, true, kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "other"), Ops: []kadm.AlterClientQuotaOp{setOp("producer_byte_rate", 10)}})
	if res[0].Err != nil {
		t.Fatalf("validate_only: %v", res[0].Err)
	}
	check("after validate_only", described(t, adm, false), all)

	// Kafka's validation, one entry at a time: the bad entry fails with
	// INVALID_REQUEST and a message naming what is wrong; the others apply.
	bad := []struct {
		entry kadm.AlterClientQuotaEntry
		msg   string
	}{
		{kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "x"), Ops: []kadm.AlterClientQuotaOp{setOp("producer_byte_rat", 10)}}, "Invalid configuration key producer_byte_rat"},
		{kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "x"), Ops: []kadm.AlterClientQuotaOp{setOp("producer_byte_rate", 0)}}, "Quota producer_byte_rate must be greater than 0"},
		{kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "x"), Ops: []kadm.AlterClientQuotaOp{setOp("consumer_byte_rate", 1.5)}}, "consumer_byte_rate cannot be a fractional value."},
		{kadm.AlterClientQuotaEntry{Entity: kadmEntity("user", ""), Ops: []kadm.AlterClientQuotaOp{setOp("request_percentage", 1)}}, "Empty user not supported"},
		{kadm.AlterClientQuotaEntry{Entity: kadmEntity("group", "g"), Ops: []kadm.AlterClientQuotaOp{setOp("request_percentage", 1)}}, "Unhandled client quota entity type: group"},
		{kadm.AlterClientQuotaEntry{Entity: nil, Ops: []kadm.AlterClientQuotaOp{setOp("request_percentage", 1)}}, "Invalid empty client quota entity"},
	}
	for _, b := range bad {
		res := alterQuotas(t, adm, false, b.entry, kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "fine"), Ops: []kadm.AlterClientQuotaOp{setOp("request_percentage", 200)}})
		if !errors.Is(res[0].Err, kerr.InvalidRequest) || res[0].ErrMessage != b.msg {
			t.Errorf("%v: got %v %q, want INVALID_REQUEST %q", b.entry, res[0].Err, res[0].ErrMessage, b.msg)
		}
		if res[1].Err != nil {
			t.Errorf("the good entry beside %v: %v", b.entry, res[1].Err)
		}
	}
	check("after bad entries", described(t, adm, true, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchName: sp("x")}), nil)

	// remove drops a key; an entity left with none is gone.
	res = alterQuotas(t, adm, false,
		kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "slow"), Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Remove: true}}},
		kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "fine"), Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Remove: true}}},
	)
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("remove %v: %v", r.Entity, r.Err)
		}
	}
	all[1] = "{client-id=slow} producer_byte_rate=1024.000000"
	check("after remove", described(t, adm, false), all)

	tb.restart()
	check("after restart", described(t, tb.admin(), false), all)
}

// throttleLog collects the throttles a client was told of.
type throttleLog struct {
	mu sync.Mutex
	ts []time.Duration
}

func (l *throttleLog) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ts = append(l.ts, d)
}

func (l *throttleLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.ts {
		if d > 0 {
			n++
		}
	}
	return n
}

// quota window of the enforcement tests: 2 samples of 1 s, so a test does
// not wait out Kafka's 11 s window; a rate is measured over at most 2 s.
var quotaWindow = []string{"quota.window.num=2", "quota.window.size.seconds=1"}

const quotaWindowSeconds = 2.0

// A producer with a producer_byte_rate gets throttle_time_ms in its
// Produce responses, and the bytes acknowledged over the time it took are
// at most the rate times (that time + the quota window); a producer with
// another client id, which no quota names, is never throttled.
func TestClientQuotaProduceThrottled(t *testing.T) {
	tb := startBroker(t, quotaWindow...)
	tb.createTopic("q", 1, nil)
	const rate = 64 << 10
	res := alterQuotas(t, tb.admin(), false, kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "slow"), Ops: []kadm.AlterClientQuotaOp{setOp("producer_byte_rate", rate)}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}

	produce := func(clientID string) (acked int, took time.Duration, throttles int) {
		log := &throttleLog{}
		cl := tb.client(kgo.ClientID(clientID), kgo.WithHooks(log), kgo.DefaultProduceTopic("q"), kgo.ProducerLinger(0),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		start := time.Now()
		for range 16 { // 16 produces of 4 records: 256 KiB, four times the rate
			recs := make([]*kgo.Record, 4)
			for i := range recs {
				recs[i] = &kgo.Record{Value: randomBytes(4 << 10)} // incompressible: the quota counts bytes on the wire
				acked += 4 << 10
			}
			produceSync(t, cl, recs...)
		}
		return acked, time.Since(start), log.count()
	}

	acked, took, throttles := produce("slow")
	if throttles == 0 {
		t.Fatalf("client slow produced %d bytes in %v and was never throttled", acked, took)
	}
	if limit := rate * (took.Seconds() + quotaWindowSeconds); float64(acked) > limit {
		t.Fatalf("client slow had %d bytes acknowledged in %v: more than rate*(interval+window) = %.0f", acked, took, limit)
	}
	if got := counterValue(tb.srv.metrics.quotaThrottled.WithLabelValues("produce")); got == 0 {
		t.Errorf("strata_broker_quota_throttled_total{quota=produce} is 0")
	}

	if _, _, throttles := produce("fast"); throttles != 0 {
		t.Fatalf("client fast, without a quota, was throttled %d times", throttles)
	}
}

// A consumer with a consumer_byte_rate reading a backlog is throttled, and
// gets at most the rate times (the time it read + the quota window); a
// consumer with another client id is not.
func TestClientQuotaFetchThrottled(t *testing.T) {
	tb := startBroker(t, quotaWindow...)
	tb.createTopic("backlog", 1, nil)
	const rate = 128 << 10
	const n = 128 // 512 KiB: four times the rate
	pcl := tb.client(kgo.DefaultProduceTopic("backlog"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := 0; i < n; i += 16 {
		recs := make([]*kgo.Record, 16)
		for j := range recs {
			recs[j] = &kgo.Record{Value: randomBytes(4 << 10)}
		}
		produceSync(t, pcl, recs...)
	}
	res := alterQuotas(t, tb.admin(), false, kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "slowreader"), Ops: []kadm.AlterClientQuotaOp{setOp("consumer_byte_rate", rate)}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}

	consume := func(clientID string) (bytes int, took time.Duration, throttles int) {
		log := &throttleLog{}
		cl := tb.client(kgo.ClientID(clientID), kgo.WithHooks(log),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"backlog": {0: kgo.NewOffset().AtStart()}}))
		start := time.Now()
		for _, r := range consumeN(t, cl, n, 60*time.Second) {
			bytes += len(r.Value)
		}
		return bytes, time.Since(start), log.count()
	}
	got, took, throttles := consume("slowreader")
	if throttles == 0 {
		t.Fatalf("client slowreader read %d bytes in %v and was never throttled", got, took)
	}
	if limit := rate * (took.Seconds() + quotaWindowSeconds); float64(got) > limit {
		t.Fatalf("client slowreader read %d bytes in %v: more than rate*(interval+window) = %.0f", got, took, limit)
	}
	if v := counterValue(tb.srv.metrics.quotaThrottled.WithLabelValues("fetch")); v == 0 {
		t.Errorf("strata_broker_quota_throttled_total{quota=fetch} is 0")
	}
	if _, _, throttles := consume("fastreader"); throttles != 0 {
		t.Fatalf("client fastreader, without a quota, was throttled %d times", throttles)
	}
}

// connEvents records, in order, what the broker did with each connection.
type connEvents struct {
	mu  sync.Mutex
	evs map[*conn][]string
}

func watchConns(s *Server) *connEvents {
	ce := &connEvents{evs: map[*conn][]string{}}
	add := func(c *conn, ev string) {
		ce.mu.Lock()
		defer ce.mu.Unlock()
		ce.evs[c] = append(ce.evs[c], ev)
	}
	s.quotaHooks.Store(&quotaHooks{
		muted:   func(c *conn, d time.Duration) { add(c, "muted") },
		unmuted: func(c *conn) { add(c, "unmuted") },
		read:    func(c *conn, key int16) { add(c, kmsg.NameForKey(key)) },
	})
	return ce
}

// all is the events of every connection that started with a Produce, one
// line each.
func (ce *connEvents) all() []string {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	var out []string
	for _, evs := range ce.evs {
		if evs[0] == "Produce" { // the raw connection's, not the admin client's
			out = append(out, strings.Join(evs, " "))
		}
	}
	sort.Strings(out)
	return out
}

// A throttled response of a KIP-219 version goes out at once with
// throttle_time_ms, and the broker reads nothing more from the connection
// until the throttle ends: the next request, sent as soon as the response
// arrived, is read only after the connection is unmuted. A version from
// before KIP-219 gets its response delayed instead, and no muting.
func TestClientQuotaMutesTheConnection(t *testing.T) {
	for _, tc := range []struct {
		version int16
		want    string // the connection's events
	}{
		{7, "Produce muted unmuted ApiVersions"},
		{5, "Produce ApiVersions"},
	} {
		tb := startBroker(t, quotaWindow...)
		tb.createTopic("m", 1, nil)
		r := tb.raw()
		req := acksZeroProduce(tc.version, "m", 0, recbatch.Make(20, time.Now().UnixMilli(), "mute"))
		req.Acks = 1
		frame := r.frame(req)
		// A quota of 3/4 of this one request: its throttle is about a third
		// of the 1 s the rate is measured over.
		quota := float64((len(frame) - 4) * 3 / 4)
		res := alterQuotas(t, tb.admin(), false, kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "test"), Ops: []kadm.AlterClientQuotaOp{setOp("producer_byte_rate", quota)}})
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		events := watchConns(tb.srv)

		sent := time.Now()
		if err := r.send(frame); err != nil {
			t.Fatal(err)
		}
		body, err := r.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = tc.version
		if err := resp.ReadFrom(body[4:]); err != nil {
			t.Fatal(err)
		}
		if resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("v%d: produce error %d", tc.version, resp.Topics[0].Partitions[0].ErrorCode)
		}
		throttle := time.Duration(resp.ThrottleMillis) * time.Millisecond
		if throttle <= 0 {
			t.Fatalf("v%d: throttle_time_ms %d, want > 0", tc.version, resp.ThrottleMillis)
		}
		// The next request at once; it is answered only after the throttle.
		if _, err := r.request(kmsg.NewPtrApiVersionsRequest()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(sent); took < throttle {
			t.Errorf("v%d: the next response came %v after the throttled request; the throttle was %v", tc.version, took, throttle)
		}
		if got := events.all(); !slices.Equal(got, []string{tc.want}) {
			t.Errorf("v%d: connection events %q, want %q", tc.version, got, tc.want)
		}
		tb.stop()
	}
}

// The rate is Kafka's: a sample per window, at least quota.window.num-1
// windows of elapsed time, obsolete samples dropped; the throttle brings
// the rate back to the quota.
func TestClientQuotaRate(t *testing.T) {
	q := newClientQuotas(11, 1)
	q.set(map[string]map[string]float64{"client-id=c": {"producer_byte_rate": 100}})
	at := func(ms int64) time.Time { return time.UnixMilli(1_000_000 + ms) }
	// 1000 bytes at once: over 10 s (the minimum window), a rate of 100: not over.
	if th := q.record(quotaProduce, anonymousUser, "c", 1000, at(0)); th != 0 {
		t.Fatalf("throttle %d at the quota", th)
	}
	// 100 more: 1100/10 s = 110/s, 10% over: throttled 10% of 10 s.
	if th := q.record(quotaProduce, anonymousUser, "c", 100, at(0)); th != 1000 {
		t.Fatalf("throttle %d, want 1000", th)
	}
	// Another client id shares nothing; a user default would give each
	// client id of the user its own sensor.
	if th := q.record(quotaProduce, anonymousUser, "d", 1e9, at(0)); th != 0 {
		t.Fatalf("client d without a quota throttled %d", th)
	}
	// After 11 windows everything is obsolete.
	if th := q.record(quotaProduce, anonymousUser, "c", 1, at(12_000)); th != 0 {
		t.Fatalf("throttle %d after the window passed", th)
	}
	// request_percentage's throttle is bounded by one window.
	q.set(map[string]map[string]float64{"user=<default>": {"request_percentage": 1}})
	if th := q.record(quotaRequest, anonymousUser, "any", 1e6, at(20_000)); th != 1000 {
		t.Fatalf("request throttle %d, want the 1000 ms bound", th)
	}
}

// Kafka's precedence: user+client-id, user+default client, user, default
// user+client-id, default user+default client, default user, client-id,
// default client-id; the first that sets the key wins.
func TestClientQuotaPrecedence(t *testing.T) {
	q := newClientQuotas(11, 1)
	levels := []string{
		"client-id=c,user=ANONYMOUS",
		"client-id=<default>,user=ANONYMOUS",
		"user=ANONYMOUS",
		"client-id=c,user=<default>",
		"client-id=<default>,user=<default>",
		"user=<default>",
		"client-id=c",
		"client-id=<default>",
	}
	for i := range levels {
		cfg := map[string]map[string]float64{}
		for j, l := range levels[i:] {
			cfg[l] = map[string]float64{"consumer_byte_rate": float64(100 * (i + j + 1))}
		}
		q.set(cfg)
		q.mu.Lock()
		limit, _, ok := q.resolveLocked(quotaFetch, anonymousUser, "c")
		q.mu.Unlock()
		if !ok || limit != float64(100*(i+1)) {
			t.Errorf("with levels from %s: limit %v %v, want %d", levels[i], limit, ok, 100*(i+1))
		}
		if e, ok := parseEntityKey(levels[i]); !ok || e.key() != levels[i] {
			t.Errorf("entity %q does not round-trip: %+v", levels[i], e)
		}
	}
}

// In a cluster, quotas are written to etcd and every broker applies them
// from its view (reconcile); the node's bbolt store holds none. One broker
// with the controller role: its embedded etcd is the cluster's.
func TestClientQuotaCluster(t *testing.T) {
	var ports freeport.Holder
	kafkaPort, err := ports.Stable()
	if err != nil {
		t.Fatal(err)
	}
	ctlPort, err := ports.StablePair() // the CONTROLLER port and etcd's client port after it
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := config.Load("", nil, []string{"log.dirs=" + dir, "node.id=1", "process.roles=broker,controller",
		fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", kafkaPort, ctlPort),
		fmt.Sprintf("controller.quorum.voters=1@127.0.0.1:%d", ctlPort), "remote.storage.enable=false"})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := wire.Meta(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	ports.Release()
	srv, err := New(cfg, Options{Logger: testLogger(), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", kafkaPort))
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-done
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(l.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	res := alterQuotas(t, adm, false, kadm.AlterClientQuotaEntry{Entity: kadmEntity("client-id", "replay"), Ops: []kadm.AlterClientQuotaOp{setOp("consumer_byte_rate", 1<<20)}})
	if res[0].Err != nil {
		t.Fatalf("alter: %v %s", res[0].Err, res[0].ErrMessage)
	}
	want := []string{"{client-id=replay} consumer_byte_rate=1048576.000000"}
	if got := described(t, adm, false); !slices.Equal(got, want) {
		t.Fatalf("described %q, want %q", got, want)
	}
	if got := srv.cl.View().Snapshot().ClientQuotas["client-id=replay"]["consumer_byte_rate"]; got != 1<<20 {
		t.Fatalf("etcd's view holds %v", got)
	}
	if local, err := meta.ClientQuotas(); err != nil || len(local) != 0 {
		t.Fatalf("the node's bbolt store holds %v (%v): a cluster's quotas are etcd's", local, err)
	}
	// Enforced from the view: the broker's quota is the one etcd holds.
	if m := srv.quotas.maxInWindow(quotaFetch, anonymousUser, "replay"); m != float64(1<<20)*float64(cfg.QuotaWindowNum-1) {
		t.Fatalf("fetch bound %v", m)
	}
}
