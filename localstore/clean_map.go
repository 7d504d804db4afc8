package localstore

import (
	"crypto/md5"
	"encoding/binary"
)

// offsetMap is the cleaner's key-to-offset map: open addressing over one
// byte slice, as Kafka's SkimpyOffsetMap. A slot is the MD5 of a key and
// the key's latest offset plus one (0: empty), so its memory is exactly
// slots*offsetMapSlotSize whatever the keys' sizes. It is full at
// offsetMapLoad of its slots.
type offsetMap struct {
	b     []byte
	slots int
	used  int
}

const (
	offsetMapSlotSize = md5.Size + 8
	offsetMapLoad     = 0.9
)

// offsetMapSlots is how many slots a map of bufBytes holds, at most want.
func offsetMapSlots(bufBytes, want int64) int {
	n := bufBytes / offsetMapSlotSize
	if w := int64(float64(want)/offsetMapLoad) + 2; w < n {
		n = w
	}
	return int(max(n, 2))
}

func newOffsetMap(slots int) *offsetMap {
	return &offsetMap{b: make([]byte, slots*offsetMapSlotSize), slots: slots}
}

// full reports whether a new key would pass the load factor.
// One slot always stays empty, so a probe ends.
func (m *offsetMap) full() bool {
	return m.used+1 >= m.slots || (m.used > 0 && float64(m.used+1) > float64(m.slots)*offsetMapLoad)
}

// slot finds the slot of hash h: its own, or the empty one it would take.
func (m *offsetMap) slot(h *[md5.Size]byte) (i int, found bool) {
	i = int(binary.BigEndian.Uint64(h[:8]) % uint64(m.slots))
	for {
		s := m.b[i*offsetMapSlotSize:]
		if binary.BigEndian.Uint64(s[md5.Size:]) == 0 {
			return i, false
		}
		if [md5.Size]byte(s[:md5.Size]) == *h {
			return i, true
		}
		if i++; i == m.slots {
			i = 0
		}
	}
}

// put records off as key's latest offset; false if the key is new and the
// map is full.
func (m *offsetMap) put(key []byte, off int64) bool {
	h := md5.Sum(key)
	i, found := m.slot(&h)
	if !found {
		if m.full() {
			return false
		}
		m.used++
	}
	s := m.b[i*offsetMapSlotSize:]
	copy(s, h[:])
	binary.BigEndian.PutUint64(s[md5.Size:], uint64(off+1))
	return true
}

// get returns key's latest offset, -1 if absent.
func (m *offsetMap) get(key []byte) int64 {
	h := md5.Sum(key)
	i, found := m.slot(&h)
	if !found {
		return -1
	}
	return int64(binary.BigEndian.Uint64(m.b[i*offsetMapSlotSize+md5.Size:])) - 1
}
