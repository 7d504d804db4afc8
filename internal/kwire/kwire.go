// Package kwire is a minimal Kafka protocol connection: one TCP connection,
// requests encoded by franz-go's kmsg, sent one at a time, each response read
// into one reused buffer and parsed by kmsg. The benchmark's protocol-level
// consumer and the brokers' replica fetchers use it.
package kwire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Conn is the transport of the protocol-level consumer when it is set
// against the raw baselines: one TCP connection of its own, requests encoded
// by franz-go's kmsg, and every response read into one reused buffer, as the
// raw-sendfile client reads into one reused buffer. franz-go's own connection
// (kgo.Broker.Request) allocates a buffer the size of each response (32 MiB
// per fetch here), and zeroing and faulting in that memory costs the client
// about as much CPU as reading the bytes off the socket; with the client on
// the same two cores as the broker, that is throughput the broker never had
// a chance at. The responses are parsed by kmsg as before; only the buffer
// they are read into differs.
//
// A response is valid until the next request. Requests are sent one at a
// time: a Conn is not safe for concurrent use.
type Conn struct {
	c        net.Conn
	fmt      *kmsg.RequestFormatter
	out, in  []byte
	corr     int32
	versions map[int16]int16 // the broker's highest version of each key
}

// wireTimeout bounds one request and its response.
const wireTimeout = 30 * time.Second

// Dial connects to addr and learns the broker's versions (ApiVersions v0).
func Dial(ctx context.Context, addr, clientID string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kwire: dial %s: %w", addr, err)
	}
	w := &Conn{c: c, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)),
		versions: map[int16]int16{18: 0}}
	req := kmsg.NewPtrApiVersionsRequest()
	kresp, err := w.Request(ctx, req)
	if err != nil {
		c.Close()
		return nil, err
	}
	resp := kresp.(*kmsg.ApiVersionsResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		c.Close()
		return nil, fmt.Errorf("kwire: ApiVersions from %s: %w", addr, err)
	}
	for _, k := range resp.ApiKeys {
		w.versions[k.ApiKey] = k.MaxVersion
	}
	return w, nil
}

func (w *Conn) Close() error { return w.c.Close() }

// Request sends req at the highest version both kmsg and the broker know,
// and reads its response into the reused buffer.
func (w *Conn) Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	top, ok := w.versions[req.Key()]
	if !ok {
		return nil, fmt.Errorf("kwire: the broker does not serve %s", kmsg.NameForKey(req.Key()))
	}
	v := min(req.MaxVersion(), top)
	req.SetVersion(v)
	w.corr++
	w.out = w.fmt.AppendRequest(w.out[:0], req, w.corr)
	deadline := time.Now().Add(wireTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { _ = w.c.SetDeadline(time.Now()) })
	defer stop()
	if err := w.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := w.c.Write(w.out); err != nil {
		return nil, w.fail(ctx, "write", req, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(w.c, size[:]); err != nil {
		return nil, w.fail(ctx, "read", req, err)
	}
	n := int(int32(binary.BigEndian.Uint32(size[:])))
	if n < 4 || n > 1<<30 {
		return nil, fmt.Errorf("kwire: %s response of %d bytes", kmsg.NameForKey(req.Key()), n)
	}
	if cap(w.in) < n {
		w.in = make([]byte, n)
	}
	body := w.in[:n]
	if _, err := io.ReadFull(w.c, body); err != nil {
		return nil, w.fail(ctx, "read", req, err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != w.corr {
		return nil, fmt.Errorf("kwire: %s response has correlation ID %d, want %d", kmsg.NameForKey(req.Key()), corr, w.corr)
	}
	body = body[4:]
	// Flexible responses carry a tagged-field section in their header,
	// except ApiVersions (key 18), whose header is always v0.
	if req.IsFlexible() && req.Key() != 18 {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, fmt.Errorf("kwire: %s response header: %w", kmsg.NameForKey(req.Key()), err)
		}
	}
	resp := req.ResponseKind()
	resp.SetVersion(v)
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("kwire: %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// fail names a failed read or write, preferring ctx's error when ctx ended.
func (w *Conn) fail(ctx context.Context, op string, req kmsg.Request, err error) error {
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return fmt.Errorf("kwire: %s %s: %w", op, kmsg.NameForKey(req.Key()), err)
}

// skipTags skips a tagged-field section: a count, then each field's tag and
// length-prefixed value.
func skipTags(b []byte) ([]byte, error) {
	uvarint := func() (uint64, error) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, errors.New("truncated tagged fields")
		}
		b = b[k:]
		return v, nil
	}
	n, err := uvarint()
	for ; err == nil && n > 0; n-- {
		if _, err = uvarint(); err != nil {
			break
		}
		var size uint64
		if size, err = uvarint(); err != nil {
			break
		}
		if size > uint64(len(b)) {
			return nil, errors.New("truncated tagged field")
		}
		b = b[size:]
	}
	return b, err
}

// Version is the highest version of key that the broker serves.
func (w *Conn) Version(key int16) (int16, bool) {
	v, ok := w.versions[key]
	return v, ok
}
