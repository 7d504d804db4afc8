package broker

// ApiVersions (key 18), versions 0-4.
//
// Answers with exactly the keys and version ranges this broker serves: the
// table below plus the group coordinator's. A request at a version above 4 is
// answered at v0 with UNSUPPORTED_VERSION and the full table (KIP-511), so the
// client retries in range. The response header is never flexible.

import (
	"context"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/broker/group"
)

const apiKeyApiVersions = 18

// served lists the API keys the broker itself handles with their version range.
// Lower bounds: Produce v3 and Fetch v4 are the first with v2 record batches
// (Kafka 4 dropped the older ones too); everything else from v0, as the oldest
// clients we serve (kafka-go, kafkajs) speak them.
var served = map[int16][2]int16{
	0:  {3, 13}, // Produce
	1:  {4, 17}, // Fetch (v18 adds KIP-1166 high-watermark fields we do not need yet)
	2:  {0, 11}, // ListOffsets (v11: earliest-pending-upload, KIP-1023)
	3:  {0, 13}, // Metadata
	10: {0, 6},  // FindCoordinator
	18: {0, 4},  // ApiVersions
	19: {0, 7},  // CreateTopics
	20: {0, 6},  // DeleteTopics
	21: {0, 2},  // DeleteRecords
	22: {0, 5},  // InitProducerId
	23: {0, 4},  // OffsetForLeaderEpoch
	32: {0, 4},  // DescribeConfigs
	33: {0, 2},  // AlterConfigs
	37: {0, 3},  // CreatePartitions
	43: {0, 2},  // ElectLeaders
	44: {0, 1},  // IncrementalAlterConfigs
	45: {0, 0},  // AlterPartitionReassignments
	46: {0, 0},  // ListPartitionReassignments
	48: {0, 1},  // DescribeClientQuotas
	49: {0, 1},  // AlterClientQuotas
	60: {0, 1},  // DescribeCluster
}

// allServed is served plus the group coordinator's keys.
var allServed = func() map[int16][2]int16 {
	m := map[int16][2]int16{}
	for k, v := range served {
		m[k] = v
	}
	for k, v := range group.Versions() {
		if _, dup := m[k]; dup {
			panic(fmt.Sprintf("broker: api key %d served twice", k))
		}
		m[k] = v
	}
	return m
}()

func versionServed(key, version int16) bool {
	r, ok := allServed[key]
	return ok && version >= r[0] && version <= r[1]
}

func (s *Server) apiVersionsResponse(version int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	keys := make([]int16, 0, len(allServed))
	for k := range allServed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		r := allServed[k]
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: r[0], MaxVersion: r[1]})
	}
	return resp
}

func (s *Server) handleApiVersions(_ context.Context, _ *conn, req *kmsg.ApiVersionsRequest) (kmsg.Response, error) {
	return s.apiVersionsResponse(req.Version), nil
}
