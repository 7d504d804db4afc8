package cluster

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// Assign's properties over many shapes: distinct replicas, every partition
// at rf, leaders and replicas spread evenly, racks alternating.
func TestAssignProperties(t *testing.T) {
	for nb := 1; nb <= 7; nb++ {
		for rf := 1; rf <= nb; rf++ {
			for _, parts := range []int{1, nb, 3 * nb, 50} {
				for _, racks := range []int{0, 2, 3} {
					var bs []BrokerInfo
					for i := range nb {
						b := BrokerInfo{ID: int32(10 + i*3)}
						if racks > 0 {
							b.Rack = fmt.Sprintf("r%d", i%racks)
						}
						bs = append(bs, b)
					}
					for _, start := range []int{0, 5} {
						out, err := Assign(bs, parts, rf, start)
						name := fmt.Sprintf("brokers %d rf %d partitions %d racks %d start %d", nb, rf, parts, racks, start)
						if err != nil || len(out) != parts {
							t.Fatalf("%s: %d partitions, %v", name, len(out), err)
						}
						leaders, replicas := map[int32]int{}, map[int32]int{}
						for p, rs := range out {
							if len(rs) != rf {
								t.Fatalf("%s: partition %d has %v", name, p, rs)
							}
							seen := map[int32]bool{}
							rackSeen := map[string]bool{}
							for _, r := range rs {
								if seen[r] {
									t.Fatalf("%s: partition %d repeats %d: %v", name, p, r, rs)
								}
								seen[r] = true
								replicas[r]++
								rackSeen[bs[(r-10)/3].Rack] = true
							}
							leaders[rs[0]]++
							if racks > 0 && len(rackSeen) != min(rf, racks) {
								t.Errorf("%s: partition %d %v spans %d racks, want %d", name, p, rs, len(rackSeen), min(rf, racks))
							}
						}
						if parts%nb == 0 {
							for _, b := range bs {
								if leaders[b.ID] != parts/nb {
									t.Errorf("%s: broker %d leads %d, want %d", name, b.ID, leaders[b.ID], parts/nb)
								}
							}
						}
						if racks == 0 && parts%nb == 0 && start == 0 {
							lo, hi := parts*rf, 0
							for _, b := range bs {
								lo, hi = min(lo, replicas[b.ID]), max(hi, replicas[b.ID])
							}
							if hi-lo > rf {
								t.Errorf("%s: replicas per broker from %d to %d", name, lo, hi)
							}
						}
					}
				}
			}
		}
	}
}

func TestAssignRefusesBadReplicationFactor(t *testing.T) {
	bs := []BrokerInfo{{ID: 1}, {ID: 2}}
	for _, rf := range []int{0, -1, 3} {
		if _, err := Assign(bs, 3, rf, 0); !errors.Is(err, ErrInvalidReplicationFactor) {
			t.Errorf("rf %d: %v", rf, err)
		}
	}
	if _, err := Assign(nil, 1, 1, 0); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Errorf("no brokers: %v", err)
	}
}

func TestRackAlternated(t *testing.T) {
	bs := []BrokerInfo{{ID: 0, Rack: "a"}, {ID: 1, Rack: "a"}, {ID: 2, Rack: "b"}, {ID: 3, Rack: "c"}, {ID: 4, Rack: "b"}}
	var ids []int32
	for _, b := range rackAlternated(bs) {
		ids = append(ids, b.ID)
	}
	if want := []int32{0, 2, 3, 1, 4}; !slices.Equal(ids, want) {
		t.Errorf("order %v, want %v (Kafka's rack-alternated list)", ids, want)
	}
}
