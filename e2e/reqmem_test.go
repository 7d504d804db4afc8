package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/recbatch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// vmRSS is the resident set of process pid, from /proc/<pid>/status.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("cannot read the broker's RSS: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", sc.Text(), err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// bigProducePrefix is a Produce v7 request frame whose one record set is
// recordsLen bytes, up to the start of those bytes: the size prefix, the
// header, the body and the record set's length. The record set starts with a
// v2 batch header that claims the whole set, so a broker that reads it all
// answers MESSAGE_TOO_LARGE (message.max.bytes is 1 MB) and writes nothing.
func bigProducePrefix(topic string, corr int32, recordsLen int) []byte {
	return recbatch.ProducePrefix("slow", topic, corr, recordsLen)
}

// TestSlowLargeRequestsStayWithinRequestMemory is issue 9's reproduction:
// 30 connections each declare a 100 MB Produce request and send it in
// pieces. Before queued.max.request.bytes the broker allocated every declared
// frame (RSS rose from 73 MB to 2.7 GB); now a connection is charged for what
// it has received and waits for room, so RSS stays near the budget, every
// request is answered, and the broker serves clients afterwards.
func TestSlowLargeRequestsStayWithinRequestMemory(t *testing.T) {
	const (
		budget     = 100 << 20 // queued.max.request.bytes = socket.request.max.bytes, the least allowed
		conns      = 30
		recordsLen = 100_000_000
		piece      = 1 << 20
	)
	p := startProc(t, "queued.max.request.bytes="+strconv.Itoa(budget))
	pid := p.cmd.Process.Pid

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("slow"),
		kgo.ConsumeTopics("slow"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, kgo.StringRecord("before")).FirstErr(); err != nil {
		t.Fatalf("produce before: %v", err)
	}
	idle := vmRSS(t, pid)

	// The margin over the budget, 150 MiB: a frame that grows copies out of
	// its previous buffer, up to half the budget, which is then garbage until
	// Go's collector runs (the broker asks for a collection when it drops a
	// large frame, but buffers of frames still growing wait for the next
	// cycle); 30 connections' read buffers (64 KiB each) and goroutines; the
	// runtime's own slack. Without the bound the broker holds 30 x 100 MB.
	limit := idle + budget + 150<<20
	t.Logf("idle RSS %d MiB; limit %d MiB", idle>>20, limit>>20)

	var (
		mu    sync.Mutex
		peak  = idle
		over  = make(chan int64, 1)
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		ncs   []net.Conn
		zeros = make([]byte, piece)
	)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			rss := vmRSS(t, pid)
			mu.Lock()
			peak = max(peak, rss)
			mu.Unlock()
			if rss > limit {
				over <- rss
				return
			}
		}
	}()
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		nc, err := net.Dial("tcp", p.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ncs = append(ncs, nc)
		wg.Add(1)
		go func(i int, nc net.Conn) {
			defer wg.Done()
			errs <- func() error {
				prefix := bigProducePrefix("slow", int32(i), recordsLen)
				if _, err := nc.Write(prefix); err != nil {
					return err
				}
				left := recordsLen - 17
				for n := 0; n < recordsLen/piece+1 && left > 0; n++ {
					k := min(left, piece)
					if _, err := nc.Write(zeros[:k]); err != nil {
						return fmt.Errorf("connection %d, piece %d: %w", i, n, err)
					}
					left -= k
				}
				var sz [4]byte
				if _, err := io.ReadFull(nc, sz[:]); err != nil {
					return fmt.Errorf("connection %d: no response: %w", i, err)
				}
				body := make([]byte, binary.BigEndian.Uint32(sz[:]))
				if _, err := io.ReadFull(nc, body); err != nil {
					return fmt.Errorf("connection %d: %w", i, err)
				}
				resp := kmsg.NewPtrProduceResponse()
				resp.SetVersion(7)
				if corr := int32(binary.BigEndian.Uint32(body)); corr != int32(i) {
					return fmt.Errorf("connection %d: correlation id %d", i, corr)
				}
				if err := resp.ReadFrom(body[4:]); err != nil {
					return fmt.Errorf("connection %d: %w", i, err)
				}
				if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.MessageTooLarge.Code {
					return fmt.Errorf("connection %d: error code %d, want MESSAGE_TOO_LARGE", i, code)
				}
				return nil
			}()
		}(i, nc)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case rss := <-over:
		for _, nc := range ncs {
			nc.Close()
		}
		<-done
		close(stop)
		t.Fatalf("broker RSS reached %d MiB with %d connections sending %d MB requests: over idle %d MiB + queued.max.request.bytes (%d MiB) + 150 MiB",
			rss>>20, conns, recordsLen/1_000_000, idle>>20, budget>>20)
	case <-done:
		close(stop)
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	t.Logf("peak RSS %d MiB (idle %d MiB)", peak>>20, idle>>20)
	mu.Unlock()

	// The broker is not wedged: a client still produces and fetches.
	if err := cl.ProduceSync(ctx, kgo.StringRecord("after")).FirstErr(); err != nil {
		t.Fatalf("produce after: %v", err)
	}
	var got []string
	for len(got) < 2 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("fetched %v before the timeout", got)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		for _, r := range fs.Records() {
			got = append(got, string(r.Value))
		}
	}
	if got[0] != "before" || got[1] != "after" {
		t.Fatalf("fetched %q, want [before after]", got)
	}
}
