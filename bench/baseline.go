package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/stratalog/strata/internal/zerocopy"
)

// Rate is a baseline's bytes moved over time.
type Rate struct {
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	MBps        float64 `json:"mbps"`
	Concurrency int     `json:"concurrency,omitempty"`
	Requests    int64   `json:"requests,omitempty"`
	How         string  `json:"how"`
}

// add returns the sum of r and u, two runs of the same baseline.
func (r Rate) add(u Rate) Rate {
	s := rate(r.Bytes+u.Bytes, time.Duration((r.Seconds+u.Seconds)*float64(time.Second)), u.How)
	s.Concurrency, s.Requests = u.Concurrency, r.Requests+u.Requests
	return s
}

func rate(n int64, d time.Duration, how string) Rate {
	r := Rate{Bytes: n, Seconds: d.Seconds(), How: how}
	if r.Seconds > 0 {
		r.MBps = float64(n) / 1e6 / r.Seconds
	}
	return r
}

// rawSendfile is the hot-consume limit: one loopback connection over which a
// minimal server sends the segment files with sendfile(2) under TCP_CORK,
// and a client reads them with io.ReadFull into one reused 1 MiB buffer and
// drops the bytes, repeating passes until minDur has passed.
//
// With piece > 0 the transfer has the rhythm of a fetch: the client asks
// (one byte), the server answers with a 4-byte length and the next piece
// bytes of the files (crossing from one file into the next, as a fetch
// crosses partitions) through zerocopy.Sendfile, the broker's own sendfile
// loop, then uncorks; the client reads all of it before it asks again. With
// piece == 0 it is one continuous stream (io.Copy from each *os.File, Go's
// sendfile).
func rawSendfile(ctx context.Context, files []string, minDur time.Duration, piece int64) (Rate, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Rate{}, err
	}
	defer l.Close()
	serr := make(chan error, 1)
	pprof.Do(ctx, pprof.Labels("side", "broker"), func(context.Context) {
		go func() {
			c, err := l.Accept()
			if err != nil {
				serr <- err
				return
			}
			defer c.Close()
			if piece > 0 {
				serr <- servePieces(c, files, minDur, piece)
				return
			}
			if err := zerocopy.SetCork(c.(*net.TCPConn), true); err != nil {
				serr <- err
				return
			}
			start := time.Now()
			for pass := 0; pass == 0 || time.Since(start) < minDur; pass++ {
				if err := sendFiles(c, files); err != nil {
					serr <- err
					return
				}
			}
			serr <- nil
		}()
	})
	var n int64
	var d time.Duration
	pprof.Do(ctx, pprof.Labels("side", "client"), func(context.Context) {
		var c net.Conn
		c, err = net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		start := time.Now()
		if piece > 0 {
			n, err = readPieces(c, buf)
		} else {
			for {
				k, rerr := io.ReadFull(c, buf)
				n += int64(k)
				if rerr != nil {
					break
				}
			}
		}
		d = time.Since(start)
	})
	if err != nil {
		return Rate{}, fmt.Errorf("bench: raw sendfile: %w", err)
	}
	if err := <-serr; err != nil {
		return Rate{}, fmt.Errorf("bench: raw sendfile: %w", err)
	}
	how := "sendfile(2) of the segment files over one loopback TCP connection, one stream, TCP_CORK, client fills a 1 MiB buffer"
	if piece > 0 {
		how = fmt.Sprintf("sendfile(2) of the segment files over one loopback TCP connection in %s answers to 1-byte requests, TCP_CORK, client reads each into a 1 MiB buffer", sizeStr(piece))
	}
	return rate(n, d, how), nil
}

// servePieces answers each one-byte request on c with a 4-byte length and
// the next piece bytes of files, until minDur has passed; then it answers
// with length 0.
func servePieces(c net.Conn, files []string, minDur time.Duration, piece int64) error {
	tc := c.(*net.TCPConn)
	var fs []*os.File
	var sizes []int64
	defer func() {
		for _, f := range fs {
			f.Close()
		}
	}()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		fs = append(fs, f)
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		sizes = append(sizes, fi.Size())
	}
	start := time.Now()
	i, off := 0, int64(0) // the cursor: file i at off
	passes := 0
	var req [1]byte
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return err
		}
		if passes > 0 && i == 0 && off == 0 && time.Since(start) >= minDur {
			binary.BigEndian.PutUint32(hdr[:], 0)
			_, err := c.Write(hdr[:])
			return err
		}
		// Take up to piece bytes from the cursor on, across files.
		type part struct{ i, off, n int64 }
		var parts []part
		var total int64
		for total < piece {
			n := min(piece-total, sizes[i]-off)
			if n > 0 {
				parts = append(parts, part{int64(i), off, n})
				total += n
				off += n
			}
			if off == sizes[i] {
				i, off = (i+1)%len(fs), 0
				if i == 0 {
					passes++
					break // a pass ends with the last file
				}
			}
		}
		// Cork for the answer, as the broker does for a response.
		if err := zerocopy.SetCork(tc, true); err != nil {
			return err
		}
		binary.BigEndian.PutUint32(hdr[:], uint32(total))
		if _, err := c.Write(hdr[:]); err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := zerocopy.Sendfile(tc, fs[p.i], p.off, p.n); err != nil {
				return err
			}
		}
		// Uncork: the answer's last partial segment goes out now.
		if err := zerocopy.SetCork(tc, false); err != nil {
			return err
		}
	}
}

// readPieces asks for pieces on c and reads each into buf until an empty one.
func readPieces(c net.Conn, buf []byte) (int64, error) {
	var n int64
	var hdr [4]byte
	for {
		if _, err := c.Write([]byte{1}); err != nil {
			return n, err
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return n, err
		}
		size := int64(binary.BigEndian.Uint32(hdr[:]))
		if size == 0 {
			return n, nil
		}
		for size > 0 {
			k, err := io.ReadFull(c, buf[:min(size, int64(len(buf)))])
			n += int64(k)
			size -= int64(k)
			if err != nil {
				return n, err
			}
		}
	}
}

func sendFiles(c net.Conn, files []string) error {
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		_, err = io.Copy(c, f) // TCPConn.ReadFrom: sendfile
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// rawSink is the produce limit: the same bytes written over one loopback
// connection in chunks of the batch size, read by a minimal server into a
// 1 MiB buffer and written to a file (no fsync: Strata does not fsync on
// produce either, flush.messages being unset).
func rawSink(ctx context.Context, files []string, chunk int, dir string) (Rate, error) {
	var data [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return Rate{}, err
		}
		data = append(data, b)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Rate{}, err
	}
	defer l.Close()
	sinkPath := filepath.Join(dir, "raw-sink.log")
	defer os.Remove(sinkPath)
	type result struct {
		n   int64
		end time.Time
		err error
	}
	done := make(chan result, 1)
	pprof.Do(ctx, pprof.Labels("side", "broker"), func(context.Context) {
		go func() {
			c, err := l.Accept()
			if err != nil {
				done <- result{err: err}
				return
			}
			defer c.Close()
			f, err := os.Create(sinkPath)
			if err != nil {
				done <- result{err: err}
				return
			}
			buf := make([]byte, 1<<20)
			var n int64
			for {
				k, rerr := io.ReadFull(c, buf)
				if k > 0 {
					if _, werr := f.Write(buf[:k]); werr != nil {
						f.Close()
						done <- result{err: werr}
						return
					}
					n += int64(k)
				}
				if rerr != nil {
					break
				}
			}
			err = f.Close()
			done <- result{n: n, end: time.Now(), err: err}
		}()
	})
	var start time.Time
	pprof.Do(ctx, pprof.Labels("side", "client"), func(context.Context) {
		var c net.Conn
		c, err = net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		start = time.Now()
		for _, b := range data {
			for len(b) > 0 && err == nil {
				k := min(chunk, len(b))
				_, err = c.Write(b[:k])
				b = b[k:]
			}
		}
		c.Close()
	})
	if err != nil {
		return Rate{}, err
	}
	r := <-done
	if r.err != nil {
		return Rate{}, fmt.Errorf("bench: raw sink: %w", r.err)
	}
	return rate(r.n, r.end.Sub(start), fmt.Sprintf("the segment bytes written over one loopback TCP connection in %s writes, server reads 1 MiB at a time and writes to a file", sizeStr(int64(chunk)))), nil
}

// object is one remote object of the cold topic.
type object struct {
	Key  string
	Size int64
}

// objectStore is what the GET and PUT baselines need of a store.
type objectStore interface {
	get(ctx context.Context, key string, off, n int64, buf []byte) (int64, error)
	put(ctx context.Context, key string, b []byte) error
	remove(ctx context.Context, key string) error
	describe() string
}

// rawGets reads every object in ranged GETs of chunk bytes, conc at a time.
func rawGets(ctx context.Context, st objectStore, objs []object, chunk int64, conc int) (Rate, error) {
	type job struct {
		key    string
		off, n int64
	}
	var jobs []job
	for _, o := range objs {
		for off := int64(0); off < o.Size; off += chunk {
			jobs = append(jobs, job{o.Key, off, min(chunk, o.Size-off)})
		}
	}
	var (
		next  atomic.Int64
		total atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1<<20)
				for {
					i := int(next.Add(1) - 1)
					if i >= len(jobs) {
						return
					}
					j := jobs[i]
					n, err := st.get(ctx, j.key, j.off, j.n, buf)
					total.Add(n)
					if err != nil {
						mu.Lock()
						first = err
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
	})
	if first != nil {
		return Rate{}, fmt.Errorf("bench: raw GETs: %w", first)
	}
	r := rate(total.Load(), time.Since(start), fmt.Sprintf("%s: ranged reads of %s, %d at a time", st.describe(), sizeStr(chunk), conc))
	r.Concurrency, r.Requests = conc, int64(len(jobs))
	return r, nil
}

// rawPuts writes objects of the same sizes (bytes of the first object,
// repeated) under a scratch prefix, conc at a time, then deletes them.
func rawPuts(ctx context.Context, st objectStore, objs []object, conc int) (Rate, error) {
	var biggest int64
	for _, o := range objs {
		biggest = max(biggest, o.Size)
	}
	data := make([]byte, 0, biggest)
	buf := make([]byte, 1<<20)
	w := bytes.NewBuffer(data)
	for off := int64(0); off < objs[0].Size; {
		n, err := st.get(ctx, objs[0].Key, off, min(int64(len(buf)), objs[0].Size-off), buf)
		if err != nil {
			return Rate{}, err
		}
		w.Write(buf[:n])
		off += n
	}
	data = w.Bytes()
	for int64(len(data)) < biggest {
		data = append(data, data[:min(len(data), int(biggest)-len(data))]...)
	}
	var (
		next  atomic.Int64
		total atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	key := func(i int) string { return fmt.Sprintf("bench-rawput/%06d", i) }
	start := time.Now()
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(objs) {
						return
					}
					if err := st.put(ctx, key(i), data[:objs[i].Size]); err != nil {
						mu.Lock()
						first = err
						mu.Unlock()
						return
					}
					total.Add(objs[i].Size)
				}
			}()
		}
		wg.Wait()
	})
	d := time.Since(start)
	for i := range objs {
		st.remove(ctx, key(i))
	}
	if first != nil {
		return Rate{}, fmt.Errorf("bench: raw PUTs: %w", first)
	}
	r := rate(total.Load(), d, fmt.Sprintf("%s: whole-object writes of the same sizes, %d at a time", st.describe(), conc))
	r.Concurrency, r.Requests = conc, int64(len(objs))
	return r, nil
}

// fsStore is the file:// store's directory: reads are pread(2) of the files
// (the limit of any reader of that directory), writes are write, fsync and
// rename, as remotestore/fs does.
type fsStore struct{ root string }

func (s fsStore) describe() string { return "files of the file:// store read directly" }

func (s fsStore) get(_ context.Context, key string, off, n int64, buf []byte) (int64, error) {
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(key)))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var got int64
	for got < n {
		k, err := f.ReadAt(buf[:min(int64(len(buf)), n-got)], off+got)
		got += int64(k)
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func (s fsStore) put(_ context.Context, key string, b []byte) error {
	p := filepath.Join(s.root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p + ".tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

func (s fsStore) remove(_ context.Context, key string) error {
	return os.Remove(filepath.Join(s.root, filepath.FromSlash(key)))
}

// minioStore is MinIO through minio-go, straight to the server (not through
// the counting proxy the broker uses).
type minioStore struct {
	cl     *minio.Client
	bucket string
}

func (s minioStore) describe() string { return "MinIO via minio-go" }

func (s minioStore) get(ctx context.Context, key string, off, n int64, buf []byte) (int64, error) {
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(off, off+n-1); err != nil {
		return 0, err
	}
	obj, err := s.cl.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	var got int64
	for got < n {
		k, err := obj.Read(buf[:min(int64(len(buf)), n-got)])
		got += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return got, err
		}
	}
	if got != n {
		return got, fmt.Errorf("GET %s [%d,+%d): %d bytes", key, off, n, got)
	}
	return got, nil
}

func (s minioStore) put(ctx context.Context, key string, b []byte) error {
	_, err := s.cl.PutObject(ctx, s.bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
	return err
}

func (s minioStore) remove(ctx context.Context, key string) error {
	return s.cl.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
}
