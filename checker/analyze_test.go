package checker

import (
	"bytes"
	"strings"
	"testing"
)

func ack(p int32, o int64, v string) Event {
	return Event{Kind: KindAck, Partition: p, Offset: o, Value: v}
}
func fin(p int32, o int64, v string) Event {
	return Event{Kind: KindFinal, Partition: p, Offset: o, Value: v}
}
func con(p int32, o int64, v string) Event {
	return Event{Kind: KindConsume, Partition: p, Offset: o, Value: v}
}
func rng(p int32, start, end int64) Event {
	return Event{Kind: KindRange, Partition: p, Offset: start, End: end}
}

// clean is a consistent run: two producers over two partitions, a failed
// (indeterminate) produce that made it into the log, one that did not.
func clean() (History, History, History) {
	prod := History{
		ack(0, 0, "a0-0"), ack(1, 0, "a0-1"), ack(0, 1, "a1-0"), ack(0, 2, "a0-2"),
		{Kind: KindFail, Partition: 1, Value: "a1-1", Err: "timeout"},
		{Kind: KindFail, Partition: -1, Value: "a1-2", Err: "timeout"},
		ack(1, 2, "a1-3"),
	}
	cons := History{con(0, 0, "a0-0"), con(0, 1, "a1-0"), con(1, 0, "a0-1")}
	final := History{rng(0, 0, 3), rng(1, 0, 3),
		fin(0, 0, "a0-0"), fin(0, 1, "a1-0"), fin(0, 2, "a0-2"),
		fin(1, 0, "a0-1"), fin(1, 1, "a1-1"), fin(1, 2, "a1-3")}
	return prod, cons, final
}

func TestAnalyzeCleanHistoryIsOK(t *testing.T) {
	prod, cons, final := clean()
	r := Analyze(prod, cons, final)
	want := Report{Acknowledged: 5, Indeterminate: 2, Consumed: 3, FinalRead: 6}
	if !r.OK() || r.Acknowledged != want.Acknowledged || r.Indeterminate != 2 || r.Consumed != 3 || r.FinalRead != 6 || len(r.Examples) != 0 {
		t.Fatalf("clean history: %+v", r)
	}
	if !strings.Contains(r.String(), "ok:") || !strings.Contains(r.String(), "acknowledged") {
		t.Fatalf("report:\n%s", r)
	}
}

func TestAnalyzeFindsEachAnomaly(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(prod, cons, final *History)
		want   Report // only the anomaly counts are compared
	}{
		{"acknowledged record missing from the final read", func(_, _, f *History) {
			*f = append((*f)[:2], (*f)[3:]...) // drop a0-2 at 0@2
		}, Report{Lost: 1}},
		{"high watermark below an acknowledgement", func(_, _, f *History) {
			(*f)[1] = rng(1, 0, 2)
			*f = (*f)[:len(*f)-1] // the final read stops before 1@2
		}, Report{Lost: 1}},
		{"final read holds another value at the acknowledged offset", func(_, _, f *History) {
			(*f)[4] = fin(0, 2, "zz-9")
		}, Report{Lost: 1, Divergent: 1}},
		{"a consumer read another value than the final read", func(_, c, _ *History) {
			(*c)[0] = con(0, 0, "b0-0")
		}, Report{Divergent: 1}},
		{"one value at two offsets", func(_, _, f *History) {
			*f = append(*f, fin(1, 3, "a0-1"))
		}, Report{Duplicates: 1}},
		{"a producer's records out of order in a partition", func(p, c, f *History) {
			// a0-0 and a0-2 swapped in partition 0, acknowledged as the log says.
			(*p)[0], (*p)[3] = ack(0, 2, "a0-0"), ack(0, 0, "a0-2")
			(*f)[2], (*f)[4] = fin(0, 0, "a0-2"), fin(0, 2, "a0-0")
			(*c)[0] = con(0, 0, "a0-2")
		}, Report{OrderViolations: 1}},
		{"records deleted by retention are not lost", func(_, _, f *History) {
			*f = History{rng(0, 2, 3), rng(1, 0, 3), (*f)[4], (*f)[5], (*f)[6], (*f)[7]}
		}, Report{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prod, cons, final := clean()
			c.mutate(&prod, &cons, &final)
			r := Analyze(prod, cons, final)
			if r.Lost != c.want.Lost || r.Duplicates != c.want.Duplicates || r.Divergent != c.want.Divergent || r.OrderViolations != c.want.OrderViolations {
				t.Fatalf("got lost %d dup %d div %d order %d, want %d %d %d %d\n%s", r.Lost, r.Duplicates, r.Divergent, r.OrderViolations,
					c.want.Lost, c.want.Duplicates, c.want.Divergent, c.want.OrderViolations, r)
			}
			if r.OK() != c.want.OK() || (r.OK() != (len(r.Examples) == 0)) {
				t.Fatalf("OK %v with examples %q", r.OK(), r.Examples)
			}
		})
	}
}

func TestAnalyzeWithoutFinalReadLosesEverything(t *testing.T) {
	prod, cons, _ := clean()
	if r := Analyze(prod, cons); r.Lost != 5 {
		t.Fatalf("no final read: lost %d, want 5", r.Lost)
	}
}

func TestHistoryRoundTripsAndRejectsGarbage(t *testing.T) {
	prod, cons, final := clean()
	all := append(append(append(History{}, prod...), cons...), final...)
	var b bytes.Buffer
	if err := WriteHistory(&b, all); err != nil {
		t.Fatal(err)
	}
	got, err := ReadHistory(bytes.NewReader(b.Bytes()), "h")
	if err != nil || len(got) != len(all) {
		t.Fatalf("read back %d events (%v), wrote %d", len(got), err, len(all))
	}
	for i := range all {
		if got[i] != all[i] {
			t.Fatalf("event %d: %+v, wrote %+v", i, got[i], all[i])
		}
	}
	bad := []struct{ in, want string }{
		{`{"kind":"ack","p":0,"o":1,"v":"a-1"}` + "\n{not json\n", "h:2"},
		{`{"kind":"eat","p":0,"o":1}`, "unknown event kind"},
		{`{"kind":"final","p":0,"o":-4,"v":"x"}`, "offset -4"},
		{`{"kind":"ack","p":0,"o":1,"extra":1}`, "h:1"},
		{`{"kind":"range","p":0,"o":5,"end":2}`, "range"},
		{strings.Repeat("x", 2<<20), "longer than"},
	}
	for _, c := range bad {
		if _, err := ReadHistory(strings.NewReader(c.in), "h"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.40q: err %v, want it to mention %q", c.in, err, c.want)
		}
	}
}

func TestParseValue(t *testing.T) {
	for _, c := range []struct {
		v    string
		p    string
		seq  int64
		good bool
	}{{"p0-12", "p0", 12, true}, {"a-b-3", "a-b", 3, true}, {"-3", "", 0, false}, {"p0-", "", 0, false}, {"p0-x", "", 0, false}, {"p0--1", "p0-", 1, true}} {
		p, seq, ok := ParseValue(c.v)
		if ok != c.good || (ok && (p != c.p || seq != c.seq)) {
			t.Errorf("ParseValue(%q) = %q %d %v", c.v, p, seq, ok)
		}
	}
}
