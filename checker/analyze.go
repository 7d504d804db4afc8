package checker

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
)

// maxExamples bounds Report.Examples.
const maxExamples = 20

// Report is what Analyze found. Zero Lost, Duplicates, Divergent and
// OrderViolations is success.
type Report struct {
	Acknowledged    int // produces acknowledged
	Indeterminate   int // produces that failed: they may or may not be in the log
	Consumed        int // records the group consumers read
	FinalRead       int // records the final read read
	BelowLogStart   int // acknowledged below the final read's log start (deleted by retention): not checked
	Lost            int // acknowledged, and not in the final read at their (partition, offset) with their value
	Duplicates      int // values read at two or more (partition, offset)s
	Divergent       int // (partition, offset)s holding two or more values across acknowledgements and readers
	OrderViolations int // per producer and partition, adjacent read records whose offsets do not increase with seq
	Examples        []string
}

// OK reports whether the report has no anomaly.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.Divergent == 0 && r.OrderViolations == 0
}

// String is a short table, then the examples.
func (r Report) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(k string, v int) { fmt.Fprintf(tw, "%s\t%d\t\n", k, v) }
	row("acknowledged", r.Acknowledged)
	row("indeterminate", r.Indeterminate)
	row("consumed", r.Consumed)
	row("final read", r.FinalRead)
	row("below log start", r.BelowLogStart)
	row("lost", r.Lost)
	row("duplicates", r.Duplicates)
	row("divergent", r.Divergent)
	row("order violations", r.OrderViolations)
	tw.Flush()
	if r.OK() {
		b.WriteString("ok: nothing acknowledged lost, no duplicates, one history, in order\n")
	}
	for _, e := range r.Examples {
		b.WriteString("  " + e + "\n")
	}
	return b.String()
}

func (r *Report) example(format string, args ...any) {
	if len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

type pos struct {
	p int32
	o int64
}

func (x pos) String() string { return fmt.Sprintf("%d@%d", x.p, x.o) }

// Analyze checks the histories of one topic's workloads together: the
// producers', the consumers' and the final read's.
//
//   - Lost: an acknowledged record that the final read does not hold at its
//     acknowledged (partition, offset) with its value (acknowledgements below
//     the final read's log start are counted as BelowLogStart instead; with no
//     final read every acknowledgement is lost).
//   - Duplicates: a value read (by anyone) at two different (partition, offset)s.
//   - Divergent: a (partition, offset) holding two different values across the
//     acknowledgements and every reader.
//   - OrderViolations: per producer and partition, the records read, by seq,
//     whose offsets do not increase.
func Analyze(histories ...History) Report {
	var r Report
	values := map[pos]map[string]bool{} // every value seen at a position
	readAt := map[string]map[pos]bool{} // every position a value was read at
	final := map[pos]string{}           // the final read
	logStart := map[int32]int64{}       // the final read's ranges
	type ack struct {
		at pos
		v  string
	}
	var acks []ack
	note := func(at pos, v string) {
		m := values[at]
		if m == nil {
			m = map[string]bool{}
			values[at] = m
		}
		m[v] = true
	}
	read := func(at pos, v string) {
		note(at, v)
		m := readAt[v]
		if m == nil {
			m = map[pos]bool{}
			readAt[v] = m
		}
		m[at] = true
	}
	for _, h := range histories {
		for _, e := range h {
			at := pos{e.Partition, e.Offset}
			switch e.Kind {
			case KindAck:
				r.Acknowledged++
				acks = append(acks, ack{at, e.Value})
				note(at, e.Value)
			case KindFail:
				r.Indeterminate++
			case KindConsume:
				r.Consumed++
				read(at, e.Value)
			case KindFinal:
				r.FinalRead++
				read(at, e.Value)
				final[at] = e.Value
			case KindRange:
				if s, ok := logStart[e.Partition]; !ok || e.Offset > s {
					logStart[e.Partition] = e.Offset
				}
			}
		}
	}

	for _, a := range acks {
		if s, ok := logStart[a.at.p]; ok && a.at.o < s {
			r.BelowLogStart++
			continue
		}
		if v, ok := final[a.at]; !ok || v != a.v {
			r.Lost++
			if !ok {
				r.example("lost: %q acknowledged at %v, absent from the final read", a.v, a.at)
			} else {
				r.example("lost: %q acknowledged at %v, the final read has %q there", a.v, a.at, v)
			}
		}
	}

	for _, at := range sortedPos(values) {
		if vs := values[at]; len(vs) > 1 {
			r.Divergent++
			r.example("divergent: %v holds %s", at, strings.Join(sortedKeys(vs), ", "))
		}
	}

	type item struct {
		seq int64
		at  pos
	}
	byProducer := map[string][]item{} // producer/partition -> records read
	for _, v := range sortedKeys(readAt) {
		ps := readAt[v]
		if len(ps) > 1 {
			r.Duplicates++
			var s []string
			for _, at := range sortedPos(ps) {
				s = append(s, at.String())
			}
			r.example("duplicate: %q read at %s", v, strings.Join(s, ", "))
		}
		prod, seq, ok := ParseValue(v)
		if !ok {
			continue
		}
		for at := range ps {
			k := fmt.Sprintf("%s/%d", prod, at.p)
			byProducer[k] = append(byProducer[k], item{seq, at})
		}
	}
	for _, k := range sortedKeys(byProducer) {
		items := byProducer[k]
		sort.Slice(items, func(i, j int) bool {
			if items[i].seq != items[j].seq {
				return items[i].seq < items[j].seq
			}
			return items[i].at.o < items[j].at.o
		})
		for i := 1; i < len(items); i++ {
			a, b := items[i-1], items[i]
			if a.seq != b.seq && b.at.o <= a.at.o {
				r.OrderViolations++
				r.example("order: producer/partition %s: seq %d at offset %d, seq %d at offset %d", k, a.seq, a.at.o, b.seq, b.at.o)
			}
		}
	}
	return r
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedPos[V any](m map[pos]V) []pos {
	out := make([]pos, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].p != out[j].p {
			return out[i].p < out[j].p
		}
		return out[i].o < out[j].o
	})
	return out
}
