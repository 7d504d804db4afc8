package kwire

import (
	"bytes"
	"testing"
)

func TestSkipTags(t *testing.T) {
	for _, c := range []struct {
		in, rest []byte
		ok       bool
	}{
		{[]byte{0, 9}, []byte{9}, true},
		{[]byte{1, 5, 2, 0xaa, 0xbb, 9}, []byte{9}, true},
		{[]byte{2, 5, 0, 6, 1, 0xcc}, []byte{}, true},
		{[]byte{}, nil, false},
		{[]byte{1, 5, 3, 0xaa}, nil, false},
		{[]byte{1}, nil, false},
	} {
		rest, err := skipTags(c.in)
		if (err == nil) != c.ok || c.ok && !bytes.Equal(rest, c.rest) {
			t.Errorf("skipTags(%x) = %x, %v", c.in, rest, err)
		}
	}
}
