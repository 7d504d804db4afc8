// Package cluster is the etcd side of a Strata cluster: the embedded etcd
// member of a controller node, broker registration, the controller's
// election and its writes, and each broker's view of the cluster.
//
// # etcd and its ports
//
// A node with the controller role (config.Cluster.Controller) runs an etcd
// member named node-<id> in-process. Its PEER URL is the node's CONTROLLER
// listener, the address in controller.quorum.voters; its CLIENT URL is the
// same host at the CONTROLLER port + 1. The voters are the initial cluster;
// a data directory that already holds a member rejoins with it. The member's
// data lives in <log.dirs>/etcd and its log in <log.dirs>/etcd.log. Other
// nodes dial every voter's (or bootstrap server's) host:port+1, or
// etcd.endpoints, an external etcd.
//
// # Keyspace (under /strata/)
//
//	brokers/<id>                 BrokerInfo (JSON) under the broker's lease; its create
//	                             revision is the broker epoch
//	controller/<id>-<lease>      a candidate, under its lease; the oldest is the
//	                             controller, its create revision the controller epoch
//	topics/<name>                TopicRecord (JSON): id, configs, replica assignment,
//	                             pending reassignments (original and target replicas)
//	partitions/<name>/<p>        PartitionState (JSON): leader, leader epoch, ISR,
//	                             partition epoch, the leader's broker epoch
//
// A broker's lease has a TTL of broker.session.timeout.ms (rounded up to a
// second) and is renewed every broker.heartbeat.interval.ms; Node.Fenced
// closes when a renewal is refused. A restart at the same address replaces
// the old registration: a new broker epoch.
//
// # The controller
//
// Controller nodes campaign (with etcd.endpoints every broker does). The
// elected one reconciles on every view change; each write is a transaction
// conditioned on its candidacy key still having the controller epoch's
// create revision and on the partition key's mod revision it read, so a
// deposed controller's writes fail. A partition whose leader is -1,
// unregistered, shutting down or restarted (registration epoch !=
// LeaderBrokerEpoch) gets the first replica in assignment order that is in
// the ISR and live (the restarted old leader only if it is the only one),
// LeaderEpoch+1 and PartitionEpoch+1; with no candidate the leader is -1 and
// the ISR keeps its last member (KRaft's rule), unless unclean leader
// election is on (topic config over broker config): then the first live
// replica leads with ISR [it], and records it lacks are lost. Unregistered or
// shutting-down followers leave ISRs (PartitionEpoch+1). ControlledShutdown
// returns when this broker leads nothing and is in no ISR but as its last
// member. A pending reassignment whose target replicas are all in the ISR is
// completed in one transaction fenced by the controller epoch and the topic's
// and partitions' mod revisions: the replicas become the target, the removing
// replicas leave the ISR, a leader outside the target is replaced by the
// first target replica in the ISR and live (LeaderEpoch+1).
//
// Topic writes (CreateTopic, CreatePartitions, SetTopicConfigs, DeleteTopic,
// AlterPartitionReassignment, which writes the partition's state too) are
// compare-and-swap transactions any node may make; AlterPartition is the
// leader's ISR change, conditioned on the partition's state and on the
// leader's own registration. A CreateTopic with more partitions than one
// transaction holds (128 operations, etcd's default) writes the rest in
// further transactions conditioned on the topic's creation.
package cluster
