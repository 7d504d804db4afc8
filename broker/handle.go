package broker

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/broker/group"
)

// handle routes one decoded request to its handler. A nil response with a nil
// error means nothing is to be written (acks=0, or the handler wrote it).
func (s *Server) handle(c *conn, hdr requestHeader, req kmsg.Request) (kmsg.Response, error) {
	ctx := s.ctx
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return s.handleApiVersions(ctx, c, r)
	case *kmsg.MetadataRequest:
		return s.handleMetadata(ctx, c, r)
	case *kmsg.ProduceRequest:
		return s.handleProduce(ctx, c, r)
	case *kmsg.FetchRequest:
		return s.handleFetch(ctx, c, hdr, r)
	case *kmsg.ListOffsetsRequest:
		return s.handleListOffsets(ctx, c, r)
	case *kmsg.FindCoordinatorRequest:
		return s.handleFindCoordinator(ctx, c, r)
	case *kmsg.CreateTopicsRequest:
		return s.handleCreateTopics(ctx, c, r)
	case *kmsg.DeleteTopicsRequest:
		return s.handleDeleteTopics(ctx, c, r)
	case *kmsg.CreatePartitionsRequest:
		return s.handleCreatePartitions(ctx, c, r)
	case *kmsg.DeleteRecordsRequest:
		return s.handleDeleteRecords(ctx, c, r)
	case *kmsg.InitProducerIDRequest:
		return s.handleInitProducerID(ctx, c, r)
	case *kmsg.OffsetForLeaderEpochRequest:
		return s.handleOffsetForLeaderEpoch(ctx, c, r)
	case *kmsg.DescribeConfigsRequest:
		return s.handleDescribeConfigs(ctx, c, r)
	case *kmsg.AlterConfigsRequest:
		return s.handleAlterConfigs(ctx, c, r)
	case *kmsg.IncrementalAlterConfigsRequest:
		return s.handleIncrementalAlterConfigs(ctx, c, r)
	case *kmsg.DescribeClusterRequest:
		return s.handleDescribeCluster(ctx, c, r)
	case *kmsg.ElectLeadersRequest:
		return s.handleElectLeaders(ctx, c, r)
	case *kmsg.AlterPartitionAssignmentsRequest:
		return s.handleAlterPartitionAssignments(ctx, c, r)
	case *kmsg.ListPartitionReassignmentsRequest:
		return s.handleListPartitionReassignments(ctx, c, r)
	case *kmsg.DescribeClientQuotasRequest:
		return s.handleDescribeClientQuotas(ctx, c, r)
	case *kmsg.AlterClientQuotasRequest:
		return s.handleAlterClientQuotas(ctx, c, r)
	}
	if s.clustered() {
		if resp, ok := s.notCoordinator(req); ok {
			resp.SetVersion(req.GetVersion())
			return resp, nil
		}
	}
	host, _, _ := net.SplitHostPort(c.nc.RemoteAddr().String())
	if resp, ok := s.groups.Handle(group.WithClient(ctx, hdr.clientID, "/"+host), req); ok {
		return resp, nil
	}
	return nil, fmt.Errorf("%w: api key %d has no handler", errFrame, hdr.key)
}
