package cluster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The keyspace, under one prefix.
const (
	prefix           = "/strata/"
	brokersPrefix    = prefix + "brokers/"       // brokers/<id>: BrokerInfo (JSON), under the broker's lease
	controllerPrefix = prefix + "controller/"    // controller/<id>-<lease>: a candidate; the oldest is the controller
	topicsPrefix     = prefix + "topics/"        // topics/<name>: TopicRecord (JSON)
	partitionsPrefix = prefix + "partitions/"    // partitions/<name>/<p>: PartitionState (JSON)
	heartbeatsPrefix = prefix + "heartbeats/"    // heartbeats/<id>: rewritten at each heartbeat, under the broker's lease
	quotasPrefix     = prefix + "quotas/"        // quotas/<entity>: client quota values (JSON), entity as the broker names it
	brokerCfgPrefix  = prefix + "brokerconfigs/" // brokerconfigs/<id> or brokerconfigs/<default>: dynamic broker configs (JSON)
)

// DefaultBrokerEntity names the cluster-wide default of the dynamic broker
// configs (Kafka's <default>); a broker's own are under its id.
const DefaultBrokerEntity = "<default>"

// maxTxnOps bounds the operations of one transaction: etcd's default
// max-txn-ops (an external etcd may keep it).
const maxTxnOps = 128

// Errors.
var (
	ErrTopicExists              = errors.New("cluster: the topic exists")
	ErrUnknownTopic             = errors.New("cluster: no such topic (or it has another topic ID)")
	ErrStalePartitionEpoch      = errors.New("cluster: the partition's state changed (stale partition or leader epoch)")
	ErrInvalidReplicationFactor = errors.New("cluster: invalid replication factor")
	ErrInvalidISR               = errors.New("cluster: the new ISR must hold the leader and only replicas of the partition")
	ErrNotLeader                = errors.New("cluster: this broker is not the partition's leader")
	ErrFenced                   = errors.New("cluster: this broker's registration is gone (fenced)")
	ErrClosed                   = errors.New("cluster: the node is closed")
	ErrInvalidAssignment        = errors.New("cluster: invalid replica assignment")
	// ElectLeaders' answers, Kafka's: ELECTION_NOT_NEEDED,
	// PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE.
	ErrElectionNotNeeded           = errors.New("cluster: the partition already has the leader asked for")
	ErrPreferredLeaderNotAvailable = errors.New("cluster: the preferred replica is not live and in the ISR")
	ErrEligibleLeadersNotAvailable = errors.New("cluster: no live replica can lead the partition")
	// ErrNoReassignmentInProgress: a cancel for a partition that is not
	// being reassigned (Kafka's NO_REASSIGNMENT_IN_PROGRESS).
	ErrNoReassignmentInProgress = errors.New("cluster: no reassignment of the partition is in progress")
)

// BrokerInfo is a broker's registration. Epoch is the etcd revision that
// created it: a new one at every start (the broker epoch).
type BrokerInfo struct {
	ID           int32
	Host         string
	Port         int32
	Rack         string
	ShuttingDown bool
	Epoch        int64
}

// TopicRecord is a topic as etcd holds it. Replicas[p] lists the replica ids
// of partition p, the first the preferred leader. While partition p is
// being reassigned (KIP-455), Reassignments[p] holds its original and target
// replicas and Replicas[p] is their union, the target first: every broker of
// the union replicates it until the controller completes the move.
type TopicRecord struct {
	Name          string
	ID            [16]byte
	Configs       map[string]string
	Replicas      [][]int32
	Reassignments map[int32]Reassignment `json:",omitempty"`
}

// PartitionState is a partition's leadership, changed only by
// compare-and-swap.
type PartitionState struct {
	Leader            int32 // -1: none
	LeaderEpoch       int32
	ISR               []int32
	PartitionEpoch    int32
	LeaderBrokerEpoch int64 // the registration Epoch of Leader when it was elected
}

// TP names a partition.
type TP struct {
	Topic     string
	Partition int32
}

// Snapshot is the cluster's state as of etcd revision Rev. It is never
// changed once published: read it without locks.
type Snapshot struct {
	Rev             int64
	Brokers         map[int32]BrokerInfo
	Topics          map[string]TopicRecord
	Partitions      map[TP]PartitionState
	Controller      int32 // -1 unknown
	ControllerEpoch int64
	// ClientQuotas are the client quotas by entity (the broker's canonical
	// name): key -> value. Never changed once published.
	ClientQuotas map[string]map[string]float64
	// BrokerConfigs are the dynamic broker configs by entity (a broker id,
	// or DefaultBrokerEntity): key -> value. Never changed once published.
	BrokerConfigs map[string]map[string]string

	partRev   map[TP]int64     // each partition key's mod revision, for compare-and-swap
	topicRev  map[string]int64 // each topic key's mod revision
	cands     map[string]candidate
	brokerRev map[int32]int64 // each registration's mod revision
	beats     map[int32]int64 // each broker's heartbeat key's mod revision
}

// candidate is one key under controller/.
type candidate struct {
	id  int32
	rev int64 // create revision
}

func brokerKey(id int32) string    { return brokersPrefix + strconv.Itoa(int(id)) }
func heartbeatKey(id int32) string { return heartbeatsPrefix + strconv.Itoa(int(id)) }
func topicKey(name string) string {
	return topicsPrefix + name
}
func partitionKey(tp TP) string {
	return partitionsPrefix + tp.Topic + "/" + strconv.Itoa(int(tp.Partition))
}
func partitionsOf(name string) string { return partitionsPrefix + name + "/" }

// parsePartitionKey splits partitions/<name>/<p>.
func parsePartitionKey(k string) (TP, bool) {
	rest, ok := strings.CutPrefix(k, partitionsPrefix)
	if !ok {
		return TP{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return TP{}, false
	}
	p, err := strconv.ParseInt(rest[i+1:], 10, 32)
	if err != nil || p < 0 {
		return TP{}, false
	}
	return TP{Topic: rest[:i], Partition: int32(p)}, true
}

func (tp TP) String() string { return fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) }

// live reports whether broker id is registered and not shutting down.
func (s *Snapshot) live(id int32) bool {
	b, ok := s.Brokers[id]
	return ok && !b.ShuttingDown
}

func has(list []int32, id int32) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}
