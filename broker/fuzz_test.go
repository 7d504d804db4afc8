package broker

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// frameOf encodes req as a request frame body (no size prefix).
func frameOf(req kmsg.Request) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint16(b, 2)
	b = append(b, "fz"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// FuzzRequestFrame feeds arbitrary bytes to the request decoder: it must
// return a request or an error, never panic or hang. The seed corpus in
// testdata/fuzz/FuzzRequestFrame holds real requests of every served key.
func FuzzRequestFrame(f *testing.F) {
	for key, r := range allServed {
		for _, v := range []int16{r[0], r[1]} {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			f.Add(frameOf(req))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		hdr, req, err := parseRequest(frame)
		if err == nil && (req == nil || req.Key() != hdr.key) {
			t.Fatalf("no error but request %v for key %d", req, hdr.key)
		}
	})
}
