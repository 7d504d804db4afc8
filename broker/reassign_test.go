package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/stratalog/strata/cluster"
)

// One node is a one-broker cluster: a reassignment to itself has nothing to
// do, any other replica list is invalid, a cancel finds nothing in
// progress, and nothing is ever listed as moving.
func TestPartitionReassignmentsOneNode(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("ra", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	self := tb.srv.cfg.BrokerID
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("ra", 0, []int32{self})
	res, err := tb.admin().AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := res["ra"][0]; r.Err != nil {
		t.Fatalf("reassign to this broker: %v", r.Err)
	}
	for _, c := range []struct {
		topic    string
		replicas []int32
		want     error
	}{
		{"ra", []int32{self + 1}, kerr.InvalidReplicaAssignment},
		{"ra", []int32{self, self}, kerr.InvalidReplicaAssignment},
		{"ra", []int32{}, kerr.InvalidReplicaAssignment},
		{"ra", nil, kerr.NoReassignmentInProgress},
		{"nope", []int32{self}, kerr.UnknownTopicOrPartition},
	} {
		var req kadm.AlterPartitionAssignmentsReq
		req.Assign(c.topic, 0, c.replicas)
		res, err := tb.admin().AlterPartitionAssignments(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if r := res[c.topic][0]; r.Err != c.want {
			t.Errorf("reassign %s-0 to %v: %v, want %v", c.topic, c.replicas, r.Err, c.want)
		}
	}
	list := kmsg.NewPtrListPartitionReassignmentsRequest()
	lresp, err := list.RequestWith(ctx, tb.client())
	if err != nil || lresp.ErrorCode != 0 || len(lresp.Topics) != 0 {
		t.Fatalf("list all: %v %+v", err, lresp)
	}
}

// A write that etcd could not commit (an election) is retriable.
func TestReassignmentErrorCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int16
	}{
		{fmt.Errorf("cluster: cannot reassign x-0: %w", rpctypes.ErrTimeoutDueToLeaderFail), kerr.RequestTimedOut.Code},
		{fmt.Errorf("cluster: cannot reassign x-0: %w", rpctypes.ErrTimeout), kerr.RequestTimedOut.Code},
		{fmt.Errorf("%w: broker 9 is not registered", cluster.ErrInvalidAssignment), kerr.InvalidReplicaAssignment.Code},
		{cluster.ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress.Code},
		{cluster.ErrUnknownTopic, kerr.UnknownTopicOrPartition.Code},
	} {
		if got, _ := clusterError(c.err); got != c.want {
			t.Errorf("%v: code %d, want %d", c.err, got, c.want)
		}
	}
}
