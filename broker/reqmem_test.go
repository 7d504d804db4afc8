package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/internal/wait"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// bigProduce is a Produce v7 frame whose one record set is recordsLen bytes
// and starts with a batch header that claims all of it: a broker that reads
// the whole frame answers MESSAGE_TOO_LARGE and writes nothing.
func bigProduce(topic string, corr int32, recordsLen int) []byte {
	b := recbatch.ProducePrefix("", topic, corr, recordsLen)
	return append(b, make([]byte, recordsLen-17)...)
}

// readProduceResponse reads one Produce v7 response and returns its error.
func readProduceResponse(nc net.Conn, corr int32) error {
	var sz [4]byte
	if _, err := io.ReadFull(nc, sz[:]); err != nil {
		return err
	}
	body := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(nc, body); err != nil {
		return err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(7)
	if err := resp.ReadFrom(body[4:]); err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

// TestPartialLargeFramesFillingRequestMemoryAllComplete is the deadlock
// scenario of queued.max.request.bytes: many connections each send part of a
// large frame, together more than the budget, and stop; then all send the
// rest. If the budget went to whoever asked, every connection would hold a
// part and wait for more forever. Every request must be answered, and the
// memory held never passes the budget.
func TestPartialLargeFramesFillingRequestMemoryAllComplete(t *testing.T) {
	const budget = 8 << 20
	for _, c := range []struct {
		name   string
		recLen int
	}{
		{"frames of 3 MiB", 3 << 20},                    // the first halves together are twice the budget
		{"frames of 7 MiB", 7 << 20},                    // one fits, with room for the start of others
		{"frames the size of the budget", budget - 100}, // one at a time
	} {
		t.Run(c.name, func(t *testing.T) {
			const conns = 12
			tb := startBroker(t, fmt.Sprintf("queued.max.request.bytes=%d", budget), fmt.Sprintf("socket.request.max.bytes=%d", budget))
			tb.createTopic("big", 1, nil)
			rm := tb.srv.reqMem

			var wg sync.WaitGroup
			errs := make([]error, conns)
			rest := make(chan struct{})
			for i := range conns {
				nc, err := net.Dial("tcp", tb.addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { nc.Close() })
				frame := bigProduce("big", int32(i), c.recLen)
				wg.Add(1)
				go func() {
					defer wg.Done()
					half := len(frame) / 2
					nc.SetDeadline(time.Now().Add(2 * time.Minute)) // a hang fails the test instead of blocking it
					if _, err := nc.Write(frame[:half]); err != nil {
						errs[i] = fmt.Errorf("first half: %w", err)
						return
					}
					<-rest
					if _, err := nc.Write(frame[half:]); err != nil {
						errs[i] = fmt.Errorf("second half: %w", err)
						return
					}
					errs[i] = readProduceResponse(nc, int32(i))
				}()
			}
			// The first halves are being read: partial frames hold a good part of the budget.
			wait.For(t, time.Minute, "partial frames holding a third of the budget", func() bool {
				return rm.used() >= budget/3
			})
			close(rest)
			wg.Wait()
			for i, err := range errs {
				if err != kerr.MessageTooLarge {
					t.Errorf("connection %d: %v, want MESSAGE_TOO_LARGE (the request was read and handled)", i, err)
				}
			}
			if p := rm.peak(); p > budget {
				t.Errorf("request memory peaked at %d bytes, over queued.max.request.bytes %d", p, budget)
			}
			// Released once each response is written.
			wait.For(t, time.Minute, "request memory back to 0", func() bool { return rm.used() == 0 })
			want := recordsFor("big", 5, 1)
			produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), want...)
		})
	}
}
