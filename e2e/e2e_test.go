package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/wait"
)

// kcat returns the kcat binary, skipping the test if it is missing (failing if
// STRATATEST_REQUIRE_KCAT=1, as make test sets).
func kcat(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("STRATATEST_REQUIRE_KCAT") == "1" {
			t.Fatal("kcat not found; make kcat installs it")
		}
		t.Skip("kcat not found; make kcat installs it")
	}
	return p
}

func runCmd(t *testing.T, timeout time.Duration, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

const million = 1_000_000

// lines makes n distinct newline-terminated values.
func lines(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "record-%07d-%s\n", i, strings.Repeat("x", i%50))
	}
	return b.Bytes()
}

func TestKcatListsProducesAndConsumesAMillion(t *testing.T) {
	kc := kcat(t)
	p := startProc(t)
	md := runCmd(t, 30*time.Second, nil, kc, "-b", p.addr(), "-L")
	if !bytes.Contains(md, []byte("1 brokers:")) || !bytes.Contains(md, []byte(p.addr())) {
		t.Fatalf("kcat -L:\n%s", md)
	}
	in := lines(million)
	file := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(file, in, 0o644)
	// Topic by auto-create; librdkafka's defaults (acks=all, idempotence off).
	runCmd(t, 3*time.Minute, nil, kc, "-b", p.addr(), "-P", "-t", "kcat", "-l", file)
	out := runCmd(t, 3*time.Minute, nil, kc, "-b", p.addr(), "-C", "-t", "kcat", "-o", "beginning", "-e", "-q", "-f", "%s\n")
	if !bytes.Equal(in, out) {
		t.Fatalf("read back %d bytes, wrote %d: not byte-identical", len(out), len(in))
	}
	// And with librdkafka's idempotent producer and a consumer group.
	small := lines(10000)
	runCmd(t, time.Minute, small, kc, "-b", p.addr(), "-P", "-t", "kcat-idem", "-X", "enable.idempotence=true")
	out = runCmd(t, time.Minute, nil, kc, "-b", p.addr(), "-G", "kcat-group", "kcat-idem", "-o", "beginning", "-e", "-q", "-f", "%s\n", "-X", "auto.offset.reset=earliest")
	if !bytes.Equal(small, out) {
		t.Fatalf("group consumer read %d bytes, want %d", len(out), len(small))
	}
}

func TestFranzGoMillionRecordsByteIdentical(t *testing.T) {
	p := startProc(t, "num.partitions=4")
	franzGoRoundTrip(t, singleTarget(p.addr()), "fg", million) // the topic by auto-create
}

// franzGoRoundTrip produces n records keyed over four partitions of topic
// with franz-go's defaults (idempotent, acks=all) and reads them back from
// the start: per key (one partition each) in produce order, byte-identical.
func franzGoRoundTrip(t *testing.T, target compatTarget, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(target.addrs...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var perr error
	var pmu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		v := []byte(topic + "-" + strconv.Itoa(i))
		cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % 4)), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				pmu.Lock()
				perr = err
				pmu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if perr != nil {
		t.Fatal(perr)
	}
	// Per key (one partition each) the values come back in produce order.
	next := map[string]int{"0": 0, "1": 1, "2": 2, "3": 3}
	read := 0
	for read < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d", read, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
		fs.EachRecord(func(r *kgo.Record) {
			k := string(r.Key)
			if want := topic + "-" + strconv.Itoa(next[k]); string(r.Value) != want {
				t.Fatalf("key %s: got %q, want %q", k, r.Value, want)
			}
			next[k] += 4
			read++
		})
	}
}

// TestKill9UnderAcksAllLosesNothing kills the broker with SIGKILL while an
// acks=all idempotent producer runs, restarts it, and checks that every
// acknowledged record is there exactly once and in order.
func TestKill9UnderAcksAllLosesNothing(t *testing.T) {
	p := startProc(t, "log.segment.bytes=65536")
	for round := 0; round < 3; round++ {
		acked := produceUntilKilled(t, p, fmt.Sprintf("r%d", round))
		p.start()
		checkAcked(t, p, acked)
	}
}

// produceUntilKilled produces into topic "crash" until the broker is killed a
// moment after the first acknowledgements; it returns the values acknowledged.
func produceUntilKilled(t *testing.T, p *proc, prefix string) map[string]bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("crash"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(3), kgo.ProduceRequestTimeout(2*time.Second),
		kgo.RecordDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			v := prefix + "-" + strconv.Itoa(i)
			cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(_ *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[v] = true
					mu.Unlock()
				}
			})
			if i%100 == 99 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	wait.For(t, 2*time.Minute, "5000 acknowledged records", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > 5000
	})
	p.kill9()
	cancel()
	wg.Wait()
	cl.Close() // fails what is in flight
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string]bool, len(acked))
	for k := range acked {
		out[k] = true
	}
	return out
}

func checkAcked(t *testing.T, p *proc, acked map[string]bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.ConsumeTopics("crash"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	end := endOffset(t, cl, "crash")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]int{}
	lastIdx := map[string]int{}
	var read int64
	for read < end {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d", read, end)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
		fs.EachRecord(func(r *kgo.Record) {
			read++
			v := string(r.Value)
			seen[v]++
			if seen[v] > 1 {
				t.Fatalf("%s appears twice", v)
			}
			prefix, idx, _ := strings.Cut(v, "-")
			i, _ := strconv.Atoi(idx)
			if last, ok := lastIdx[prefix]; ok && i <= last {
				t.Fatalf("%s after %s-%d: out of order", v, prefix, last)
			}
			lastIdx[prefix] = i
		})
	}
	for v := range acked {
		if seen[v] == 0 {
			t.Fatalf("acknowledged record %s lost (%d acknowledged, %d in the log)", v, len(acked), read)
		}
	}
	t.Logf("%d acknowledged, all present; %d records in the log", len(acked), read)
}

func endOffset(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total
}
