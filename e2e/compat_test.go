package e2e

// Shared by the client compatibility tests (compat_*_test.go): a client log
// that is shown when a test fails, and the records they produce.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// clientLog collects a client library's debug log for the test running now;
// the libraries log through package-level loggers that outlive a test, so the
// writer stays and the buffer behind it is switched per test.
type clientLog struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (l *clientLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf == nil {
		return len(b), nil
	}
	return l.buf.Write(b)
}

// Printf makes clientLog a logger for clients that take a Printf function.
func (l *clientLog) Printf(format string, args ...any) {
	fmt.Fprintf(l, format+"\n", args...)
}

// capture routes the log to a fresh buffer for t and prints it when t fails
// (or always with STRATATEST_CLIENT_DEBUG=1).
func (l *clientLog) capture(t *testing.T, name string) {
	t.Helper()
	buf := &bytes.Buffer{}
	l.mu.Lock()
	l.buf = buf
	l.mu.Unlock()
	t.Cleanup(func() {
		l.mu.Lock()
		l.buf = nil
		s := buf.String()
		l.mu.Unlock()
		if t.Failed() || os.Getenv("STRATATEST_CLIENT_DEBUG") == "1" {
			// The tail only, unless asked for all: a long client log pushed
			// another test's failure out of the part of the output CI kept.
			max := 30_000
			if os.Getenv("STRATATEST_CLIENT_DEBUG") == "1" {
				max = 1 << 30
			}
			if len(s) > max {
				s = "...\n" + s[len(s)-max:]
			}
			t.Logf("%s log:\n%s", name, s)
		}
	})
}

// compatValue is record i's value: sizes from 0 to about 2 KB, every byte value.
func compatValue(prefix string, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s-%06d|", prefix, i)
	for j := 0; j < (i*37)%2000; j++ {
		b.WriteByte(byte(i + j))
	}
	if i%97 == 0 {
		return []byte{}
	}
	return b.Bytes()
}

func compatKey(i int) []byte { return []byte(fmt.Sprintf("key-%d", i%61)) }

// uniqueName makes a topic or group name that differs per (sub)test.
func uniqueName(t *testing.T, base string) string {
	r := strings.NewReplacer("/", "-", " ", "-", "_", "-")
	return r.Replace(strings.ToLower(base + "-" + t.Name()))
}

// versionProxy forwards client connections to the broker and records the API
// key and version of every request, so a test can show which versions a
// client really spoke. The broker advertises the proxy's address, so the
// clients' later connections (after Metadata) go through it too.
type versionProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	seen   map[[2]int16]int
	conns  []net.Conn
	wg     sync.WaitGroup
}

// startCompatBroker starts the binary behind a versionProxy; clients use
// vp.addr().
func startCompatBroker(t *testing.T, sets ...string) (*proc, *versionProxy) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vp := &versionProxy{ln: ln, seen: map[[2]int16]int{}}
	p := startProc(t, append([]string{"advertised.listeners=PLAINTEXT://" + vp.addr()}, sets...)...)
	vp.target = p.addr()
	vp.wg.Add(1)
	go vp.accept()
	t.Cleanup(vp.close)
	return p, vp
}

func (vp *versionProxy) addr() string { return vp.ln.Addr().String() }

func (vp *versionProxy) accept() {
	defer vp.wg.Done()
	for {
		c, err := vp.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", vp.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		vp.mu.Lock()
		vp.conns = append(vp.conns, c, s)
		vp.mu.Unlock()
		vp.wg.Add(2)
		go func() {
			defer vp.wg.Done()
			io.Copy(c, s)
			c.Close()
		}()
		go func() {
			defer vp.wg.Done()
			defer s.Close()
			vp.forwardRequests(c, s)
		}()
	}
}

// forwardRequests copies size-prefixed request frames from c to s, noting
// each frame's key and version (the first four bytes of every request header).
func (vp *versionProxy) forwardRequests(c io.Reader, s io.Writer) {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		key, ver := int16(binary.BigEndian.Uint16(hdr[4:6])), int16(binary.BigEndian.Uint16(hdr[6:8]))
		vp.mu.Lock()
		vp.seen[[2]int16{key, ver}]++
		vp.mu.Unlock()
		if _, err := s.Write(hdr[:]); err != nil {
			return
		}
		if _, err := io.CopyN(s, c, size-4); err != nil {
			return
		}
	}
}

func (vp *versionProxy) close() {
	vp.ln.Close()
	vp.mu.Lock()
	for _, c := range vp.conns {
		c.Close()
	}
	vp.mu.Unlock()
	vp.wg.Wait()
}

// versions returns the versions seen per API key.
func (vp *versionProxy) versions() map[int16][]int16 {
	vp.mu.Lock()
	defer vp.mu.Unlock()
	m := map[int16][]int16{}
	for kv := range vp.seen {
		m[kv[0]] = append(m[kv[0]], kv[1])
	}
	for _, vs := range m {
		slices.Sort(vs)
	}
	return m
}

// report logs the versions seen, by API name.
func (vp *versionProxy) report(t *testing.T) string {
	vs := vp.versions()
	keys := slices.Sorted(maps.Keys(vs))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %v; ", kmsg.NameForKey(k), vs[k])
	}
	t.Logf("request versions: %s", b.String())
	return b.String()
}

// expect fails t unless every listed API was requested, and only at versions
// within the given range.
func (vp *versionProxy) expect(t *testing.T, want map[int16][2]int16) {
	t.Helper()
	vs := vp.versions()
	for k, r := range want {
		got := vs[k]
		if len(got) == 0 {
			t.Errorf("%s was never requested (want v%d-%d)", kmsg.NameForKey(k), r[0], r[1])
			continue
		}
		for _, v := range got {
			if v < r[0] || v > r[1] {
				t.Errorf("%s requested at v%d, want v%d-%d", kmsg.NameForKey(k), v, r[0], r[1])
			}
		}
	}
}

// clientRec is a record as a compatibility test wrote or read it through one
// client, compared field by field with what another client did.
type clientRec struct {
	partition int32
	offset    int64
	key, val  []byte
	hdrs      string
	ts        int64
}

func (r clientRec) String() string {
	return fmt.Sprintf("p%d@%d key=%q len(val)=%d hdrs=%q ts=%d", r.partition, r.offset, r.key, len(r.val), r.hdrs, r.ts)
}

// sortRecs orders records by partition, then offset.
func sortRecs(recs []clientRec) {
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].partition != recs[j].partition {
			return recs[i].partition < recs[j].partition
		}
		return recs[i].offset < recs[j].offset
	})
}

// compareRecs asserts that got and want hold the same records, in any order.
func compareRecs(t *testing.T, what string, got, want []clientRec) {
	t.Helper()
	got, want = append([]clientRec(nil), got...), append([]clientRec(nil), want...)
	sortRecs(got)
	sortRecs(want)
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.partition != w.partition || g.offset != w.offset || !bytes.Equal(g.key, w.key) || !bytes.Equal(g.val, w.val) || g.hdrs != w.hdrs || g.ts != w.ts {
			t.Fatalf("%s: record %d differs:\n got %v\nwant %v", what, i, g, w)
		}
	}
}
