package cluster

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Assign places the replicas of partitions startPartition ..
// startPartition+partitions-1 on brokers as Kafka's
// AdminUtils.assignReplicasToBrokers does: a random start index and shift,
// the replicas of a partition on distinct brokers, leaders and replicas
// spread evenly; when brokers have racks, the brokers are ordered so racks
// alternate and a partition's replicas go to distinct racks first (a broker
// without a rack counts as rack ""). out[i] is partition startPartition+i.
func Assign(brokers []BrokerInfo, partitions, replicationFactor int, startPartition int) ([][]int32, error) {
	if replicationFactor < 1 || replicationFactor > len(brokers) {
		return nil, fmt.Errorf("%w: %d with %d live brokers", ErrInvalidReplicationFactor, replicationFactor, len(brokers))
	}
	if partitions < 0 {
		return nil, fmt.Errorf("%w: %d partitions", ErrInvalidAssignment, partitions)
	}
	bs := slices.SortedFunc(slices.Values(brokers), func(a, b BrokerInfo) int { return cmp.Compare(a.ID, b.ID) })
	racked := slices.ContainsFunc(bs, func(b BrokerInfo) bool { return b.Rack != "" })
	if racked {
		bs = rackAlternated(bs)
	}
	rack := map[int32]string{}
	for _, b := range bs {
		rack[b.ID] = b.Rack
	}
	numRacks := len(slices.Compact(slices.Sorted(func(yield func(string) bool) {
		for _, b := range bs {
			if !yield(b.Rack) {
				return
			}
		}
	})))
	nb := len(bs)
	startIndex := rand.IntN(nb)
	shift := rand.IntN(nb)
	cur := max(0, startPartition)
	out := make([][]int32, 0, partitions)
	for range partitions {
		if cur > 0 && cur%nb == 0 {
			shift++
		}
		first := (cur + startIndex) % nb
		leader := bs[first].ID
		rs := []int32{leader}
		if !racked {
			for j := range replicationFactor - 1 {
				rs = append(rs, bs[replicaIndex(first, shift, j, nb)].ID)
			}
		} else {
			racks := map[string]bool{rack[leader]: true}
			k := 0
			for range replicationFactor - 1 {
				for {
					b := bs[replicaIndex(first, shift*numRacks, k, nb)].ID
					k++
					if (!racks[rack[b]] || len(racks) == numRacks) && (!slices.Contains(rs, b) || len(rs) == nb) {
						rs = append(rs, b)
						racks[rack[b]] = true
						break
					}
				}
			}
		}
		out = append(out, rs)
		cur++
	}
	return out, nil
}

func replicaIndex(first, shift, j, nb int) int {
	if nb == 1 {
		return first
	}
	s := 1 + (shift+j)%(nb-1)
	return (first + s) % nb
}

// rackAlternated orders brokers (sorted by id) so that racks alternate:
// the first of each rack (racks sorted), then the second of each, and so on.
func rackAlternated(bs []BrokerInfo) []BrokerInfo {
	byRack := map[string][]BrokerInfo{}
	for _, b := range bs {
		byRack[b.Rack] = append(byRack[b.Rack], b)
	}
	racks := slices.Sorted(func(yield func(string) bool) {
		for r := range byRack {
			if !yield(r) {
				return
			}
		}
	})
	out := make([]BrokerInfo, 0, len(bs))
	for i := 0; len(out) < len(bs); i++ {
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out
}
