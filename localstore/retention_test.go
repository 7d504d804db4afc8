package localstore

import "testing"

func TestRetentionCutoff(t *testing.T) {
	segs := []RetentionItem{{10, 100, 1000}, {20, 100, 2000}, {30, 100, 3000}}
	cases := []struct {
		name          string
		now, ms, byts int64
		want          int64
	}{
		{"nothing expires", 3000, 5000, -1, -1},
		{"first by time", 2500, 1000, -1, 10},
		{"two by time", 3500, 1000, -1, 20},
		{"by size keeps at least the limit", 0, -1, 150, 10},
		{"by size exact", 0, -1, 100, 20},
		{"both off", 9999, -1, -1, -1},
	}
	for _, c := range cases {
		if got := RetentionCutoff(segs, 300, c.now, c.ms, c.byts); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}
