package zerocopy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestSendfileSlices sends slices of a file, corked, over a loopback
// connection and checks the bytes that arrive, including a slice larger than
// the socket buffer (the poller path) and an empty one.
func TestSendfileSlices(t *testing.T) {
	data := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	f, l := fileAndListener(t, data)
	slices := [][2]int64{{0, 100}, {12345, 0}, {1 << 20, 7 << 20}, {len64(data) - 1, 1}}
	var want []byte
	for _, s := range slices {
		want = append(want, data[s[0]:s[0]+s[1]]...)
	}
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	if err := SetCork(tc, true); err != nil {
		t.Fatal(err)
	}
	for _, s := range slices {
		n, err := Sendfile(tc, f, s[0], s[1])
		if err != nil || n != s[1] {
			t.Fatalf("Sendfile(%d, %d) = %d, %v", s[0], s[1], n, err)
		}
	}
	if err := SetCork(tc, false); err != nil {
		t.Fatal(err)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 0 {
		t.Errorf("file position moved to %d", off)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("received %d bytes, want %d (equal: false)", len(b), len(want))
	}
}

// TestSendfileShortFile asks for more bytes than the file holds.
func TestSendfileShortFile(t *testing.T) {
	f, l := fileAndListener(t, []byte("short"))
	go func() {
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n, err := Sendfile(c.(*net.TCPConn), f, 0, 10)
	if err == nil || n != 5 {
		t.Errorf("Sendfile past the end = %d, %v; want 5 and an error", n, err)
	}
}

func len64(b []byte) int64 { return int64(len(b)) }

// fileAndListener writes data to a file and opens it, and listens on a free
// loopback port; both are closed when the test ends.
func fileAndListener(t *testing.T, data []byte) (*os.File, net.Listener) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return f, l
}
