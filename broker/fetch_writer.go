package broker

// The Fetch response is the one message encoded by hand: everything around the
// record sets goes into a memory buffer, and each record set goes from its
// segment file (or cached remote chunk) to the socket with sendfile(2), at an
// explicit file offset so that fetches in flight never share a seek position.
// With strata.sendfile.enable=false the record sets are read into memory and
// written instead, the baseline for what zero copy saves.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/zerocopy"
	"github.com/stratalog/strata/localstore"
)

// piece is either bytes from memory or a file slice.
type piece struct {
	mem   []byte
	slice localstore.Slice
}

// encodeFetchResponse lays out a Fetch response body (after the response
// header) at version v as pieces.
func encodeFetchResponse(v int16, errCode int16, sessionID int32, parts []fetchPart, endpoints []kmsg.FetchResponseBroker) []piece {
	flex := v >= 12
	var pieces []piece
	b := make([]byte, 0, 256)
	b = kbin.AppendInt32(b, 0) // throttle (v1+)
	if v >= 7 {
		b = kbin.AppendInt16(b, errCode)
		b = kbin.AppendInt32(b, sessionID)
	}
	// Group partitions by topic, in order of first appearance.
	type group struct {
		key   sessKey
		parts []*fetchPart
	}
	var groups []*group
	idx := map[sessKey]*group{}
	for i := range parts {
		k := sessKey{name: parts[i].key.name, id: parts[i].key.id}
		g := idx[k]
		if g == nil {
			g = &group{key: k}
			idx[k] = g
			groups = append(groups, g)
		}
		g.parts = append(g.parts, &parts[i])
	}
	b = appendArrayLen(b, flex, len(groups))
	for _, g := range groups {
		if v >= 13 {
			b = kbin.AppendUuid(b, g.key.id)
		} else if flex {
			b = kbin.AppendCompactString(b, g.key.name)
		} else {
			b = kbin.AppendString(b, g.key.name)
		}
		b = appendArrayLen(b, flex, len(g.parts))
		for _, fp := range g.parts {
			code := int16(0)
			if fp.err != nil {
				code = fp.err.Code
			}
			b = kbin.AppendInt32(b, fp.key.index)
			b = kbin.AppendInt16(b, code)
			b = kbin.AppendInt64(b, fp.hw)
			b = kbin.AppendInt64(b, fp.hw) // last stable offset: no transactions
			if v >= 5 {
				b = kbin.AppendInt64(b, fp.logStart)
			}
			// Aborted transactions: null.
			if flex {
				b = kbin.AppendUvarint(b, 0)
			} else {
				b = kbin.AppendInt32(b, -1)
			}
			if v >= 11 {
				b = kbin.AppendInt32(b, -1) // preferred read replica
			}
			n := fp.records.Len()
			if flex {
				b = kbin.AppendUvarint(b, uint32(n+1))
			} else {
				b = kbin.AppendInt32(b, int32(n))
			}
			if n > 0 {
				pieces = append(pieces, piece{mem: b})
				for _, sl := range fp.records {
					pieces = append(pieces, piece{slice: sl})
				}
				b = make([]byte, 0, 128)
			}
			if flex {
				// Partition tags: 0 DivergingEpoch {Epoch int32, EndOffset
				// int64, tags}, 1 CurrentLeader {LeaderID, LeaderEpoch int32,
				// tags}.
				n := 0
				if fp.diverging {
					n++
				}
				if fp.hint {
					n++
				}
				b = kbin.AppendUvarint(b, uint32(n))
				if fp.diverging {
					b = append(b, 0, 13)
					b = kbin.AppendInt32(b, fp.divergeEpoch)
					b = kbin.AppendInt64(b, fp.divergeEnd)
					b = append(b, 0)
				}
				if fp.hint {
					b = append(b, 1, 9)
					b = kbin.AppendInt32(b, fp.hintLeader)
					b = kbin.AppendInt32(b, fp.hintLeaderEpoch)
					b = append(b, 0)
				}
			}
		}
		if flex {
			b = append(b, 0) // topic tags
		}
	}
	if flex {
		// Response tags: 0 NodeEndpoints (v16+), the leaders the hints name.
		if v >= 16 && len(endpoints) > 0 {
			var ep []byte
			ep = kbin.AppendCompactArrayLen(ep, len(endpoints))
			for _, e := range endpoints {
				ep = kbin.AppendInt32(ep, e.NodeID)
				ep = kbin.AppendCompactString(ep, e.Host)
				ep = kbin.AppendInt32(ep, e.Port)
				ep = kbin.AppendCompactNullableString(ep, e.Rack)
				ep = append(ep, 0)
			}
			b = kbin.AppendUvarint(b, 1)
			b = kbin.AppendUvarint(b, 0)
			b = kbin.AppendUvarint(b, uint32(len(ep)))
			b = append(b, ep...)
		} else {
			b = append(b, 0)
		}
	}
	return append(pieces, piece{mem: b})
}

func appendArrayLen(b []byte, flex bool, n int) []byte {
	if flex {
		return kbin.AppendCompactArrayLen(b, n)
	}
	return kbin.AppendArrayLen(b, n)
}

func (s *Server) writeFetchResponse(c *conn, hdr requestHeader, version int16, errCode int16, sessionID int32, parts []fetchPart) error {
	pieces := encodeFetchResponse(version, errCode, sessionID, parts, s.hintEndpoints(parts))
	binary.BigEndian.PutUint32(pieces[0].mem, uint32(c.q.throttle)) // throttle_time_ms leads the body
	head := make([]byte, 8, 9)
	binary.BigEndian.PutUint32(head[4:], uint32(hdr.corrID))
	if version >= 12 {
		head = append(head, 0) // response header tags
	}
	size := int64(len(head) - 4)
	for _, p := range pieces {
		size += int64(len(p.mem)) + p.slice.Len
	}
	if size > 1<<31-1 {
		return fmt.Errorf("broker: fetch response of %d bytes", size)
	}
	binary.BigEndian.PutUint32(head, uint32(size))
	pieces[0].mem = append(head, pieces[0].mem...)

	c.nc.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	defer c.nc.SetWriteDeadline(time.Time{})
	tc, _ := c.nc.(*net.TCPConn)
	useSendfile := s.cfg.SendfileEnable && tc != nil
	if useSendfile && len(pieces) > 1 {
		// Cork: header bytes and file bytes leave in full segments.
		zerocopy.SetCork(tc, true)
		defer zerocopy.SetCork(tc, false)
	}
	for _, p := range pieces {
		if len(p.mem) > 0 {
			if _, err := c.nc.Write(p.mem); err != nil {
				return err
			}
		}
		if p.slice.Len == 0 {
			continue
		}
		if useSendfile {
			n, err := zerocopy.Sendfile(tc, p.slice.File, p.slice.Pos, p.slice.Len)
			s.metrics.sendfileBytes.Add(float64(n))
			if err != nil {
				return err
			}
		} else {
			n, err := copySlice(c.nc, p.slice)
			s.metrics.copiedBytes.Add(float64(n))
			if err != nil {
				return err
			}
		}
		s.metrics.fetchBytes.Add(float64(p.slice.Len))
	}
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copySlice is the read-and-write path: pread into memory, write to the socket.
func copySlice(w io.Writer, sl localstore.Slice) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var done int64
	for done < sl.Len {
		n, err := sl.File.ReadAt(buf[:min(int64(len(buf)), sl.Len-done)], sl.Pos+done)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return done, werr
			}
			done += int64(n)
		}
		if err != nil && done < sl.Len {
			return done, fmt.Errorf("broker: reading %s: %w", sl.File.Name(), err)
		}
	}
	return done, nil
}
