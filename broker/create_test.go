package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Creating a topic of 10,000 partitions does its disk work without holding
// anything produce and fetch take: with the creation stopped half-way
// through opening its partition logs, a franz-go producer and consumer on
// another topic go on, request after request. The proof is the order of
// events: their records are acknowledged and read while the creation waits
// for them, so none of their requests waited for the creation.
func TestCreateHugeTopicDoesNotStallOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 partition logs")
	}
	const parts, half = 10000, 5000
	// An idle partition keeps one file open, its log (its index files open
	// with the first index entry): 10,000 partitions need more descriptors
	// than some machines allow by default, as in Kafka. Root may raise it.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if need := uint64(parts + 4096); lim.Cur < need {
		raised := syscall.Rlimit{Cur: max(need, lim.Cur), Max: max(need, lim.Max)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			t.Skipf("10,000 partitions need %d file descriptors; the limit is %d and cannot be raised here: %v", need, lim.Cur, err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	}
	tb := startBroker(t, "num.recovery.threads.per.data.dir=4")
	tb.createTopic("busy", 1, nil)
	var (
		opened   atomic.Int64
		midway   = make(chan struct{})
		progress = make(chan struct{})
		once     sync.Once
		released sync.Once
	)
	release := func() { released.Do(func() { close(progress) }) }
	t.Cleanup(release)
	hook := func(topic, _ string) {
		if topic != "huge" || opened.Add(1) != half {
			return
		}
		once.Do(func() { close(midway) })
		select { // a guard: a client that waited for the creation fails below
		case <-progress:
		case <-time.After(2 * time.Minute):
		}
	}
	tb.srv.topics.opened.Store(&hook)

	created := make(chan error, 1)
	go func() {
		adm := tb.admin()
		adm.SetTimeoutMillis(300000) // the creation is held while the clients run
		resp, err := adm.CreateTopic(ctxT(t, 5*time.Minute), parts, 1, nil, "huge")
		if err == nil && resp.Err != nil {
			err = fmt.Errorf("%w: %s", resp.Err, resp.ErrMessage)
		}
		created <- err
	}()
	select {
	case <-midway:
	case err := <-created:
		t.Fatalf("the creation ended before it was half-way: %v", err)
	}

	// The creation is stopped with half of its logs open. Produce and
	// consume on the other topic, 20 round trips each.
	prod := tb.client(kgo.DefaultProduceTopic("busy"), kgo.ProducerLinger(0))
	cons := tb.client(kgo.ConsumeTopics("busy"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for i := range 20 {
		produceSync(t, prod, &kgo.Record{Topic: "busy", Value: fmt.Appendf(nil, "during-%d", i)})
		got := consumeN(t, cons, 1, 30*time.Second)
		if string(got[0].Value) != fmt.Sprintf("during-%d", i) {
			t.Fatalf("read %q, want during-%d", got[0].Value, i)
		}
	}
	select {
	case err := <-created:
		t.Fatalf("the creation finished before the clients' requests did (%v): the test proves nothing", err)
	default:
	}
	if n := opened.Load(); n >= parts {
		t.Fatalf("all %d logs opened while the creation was held", n)
	}
	release()
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if n := len(tb.srv.topics.get("huge").parts()); n != parts {
		t.Fatalf("huge has %d partitions", n)
	}
}
