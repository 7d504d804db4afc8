package config

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cluster is this node's part in a cluster, parsed and checked from the
// cluster keys (doc.go, "A cluster"). Package cluster starts from it.
type Cluster struct {
	NodeID            int32  // node.id (broker.id)
	Broker            bool   // process.roles has broker (or only etcd.endpoints is set)
	Controller        bool   // process.roles has controller: this node runs an etcd member
	ControllerHost    string // the controller listener's host (its etcd peer URL); controllers only
	ControllerPort    int    // the controller listener's port; the etcd client URL is ControllerPort + 1
	Voters            []Voter
	Bootstrap         []string // controller.quorum.bootstrap.servers, host:port
	EtcdEndpoints     []string // the etcd client URLs to dial: etcd.endpoints, else each voter's (or bootstrap server's) host:port+1
	Rack              string   // broker.rack
	EtcdLogLevel      string   // etcd.log.level: the embedded etcd member's log, <metadata.log.dir or log.dirs>/etcd.log
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// UncleanLeaderElection is the broker's unclean.leader.election.enable;
	// a topic's own value overrides it.
	UncleanLeaderElection bool
	// Preferred-leader rebalancing: auto.leader.rebalance.enable,
	// leader.imbalance.per.broker.percentage and
	// leader.imbalance.check.interval.seconds.
	AutoLeaderRebalance          bool
	LeaderImbalancePercent       int
	LeaderImbalanceCheckInterval time.Duration
}

// RackAwareReplicaSelector is Kafka's class name for replica.selector.class
// that sends a consumer to an in-sync replica in its rack (KIP-392).
const RackAwareReplicaSelector = "org.apache.kafka.common.replica.RackAwareReplicaSelector"

// RackAwareReads reports whether replica.selector.class selects the replica
// in a consumer's rack (either spelling of RackAwareReplicaSelector).
func (b *Broker) RackAwareReads() bool {
	v := strings.TrimSpace(b.ReplicaSelectorClass)
	return v == RackAwareReplicaSelector || v == "RackAwareReplicaSelector"
}

// ClusterMode reports whether this node is part of a cluster: process.roles
// or etcd.endpoints is set. Without either Strata is the single node.
func (b *Broker) ClusterMode() bool {
	return strings.TrimSpace(b.ProcessRoles) != "" || strings.TrimSpace(b.EtcdEndpoints) != ""
}

// Cluster parses and checks the cluster keys. Errors are *Error naming the
// key and what is allowed. It does not check what only Load can see (which
// keys were set): Load does that too.
func (b *Broker) Cluster() (Cluster, error) {
	c := Cluster{
		NodeID:                b.BrokerID,
		Rack:                  strings.TrimSpace(b.BrokerRack),
		EtcdLogLevel:          b.EtcdLogLevel,
		SessionTimeout:        time.Duration(b.BrokerSessionTimeoutMs) * time.Millisecond,
		HeartbeatInterval:     time.Duration(b.BrokerHeartbeatIntervalMs) * time.Millisecond,
		UncleanLeaderElection: b.UncleanLeaderElectionEnable,

		AutoLeaderRebalance:          b.AutoLeaderRebalanceEnable,
		LeaderImbalancePercent:       int(b.LeaderImbalancePerBrokerPercentage),
		LeaderImbalanceCheckInterval: time.Duration(b.LeaderImbalanceCheckIntervalSeconds) * time.Second,
	}
	bad := func(key, value, format string, args ...any) (Cluster, error) {
		return Cluster{}, valueError(key, value, format, args...)
	}
	if !b.ClusterMode() {
		return bad("process.roles", "", "empty, and etcd.endpoints is empty: this node is not in a cluster (allowed: broker, controller, broker,controller)")
	}
	if why := checkRoles(b.ProcessRoles); why != "" {
		return bad("process.roles", b.ProcessRoles, "%s (allowed: %s)", why, brokerByName["process.roles"].allowed)
	}
	for r := range strings.SplitSeq(b.ProcessRoles, ",") {
		switch r {
		case "broker":
			c.Broker = true
		case "controller":
			c.Controller = true
		}
	}
	external := strings.TrimSpace(b.EtcdEndpoints) != ""
	if !c.Broker && !c.Controller {
		c.Broker = true // etcd.endpoints alone: a broker of an external etcd
	}
	if c.NodeID < 0 {
		return bad("node.id", i64(int64(c.NodeID)), "%d: a cluster node needs its id (allowed: 0 to 2147483647)", c.NodeID)
	}
	voters, err := ParseVoters(b.ControllerQuorumVoters)
	if err != nil {
		return bad("controller.quorum.voters", b.ControllerQuorumVoters, "%v (allowed: %s)", err, brokerByName["controller.quorum.voters"].allowed)
	}
	c.Voters = voters
	if why := checkHostPorts(b.ControllerQuorumBootstrapServers); why != "" {
		return bad("controller.quorum.bootstrap.servers", b.ControllerQuorumBootstrapServers, "%s (allowed: host:port,...)", why)
	}
	if s := strings.TrimSpace(b.ControllerQuorumBootstrapServers); s != "" {
		for e := range strings.SplitSeq(s, ",") {
			c.Bootstrap = append(c.Bootstrap, strings.TrimSpace(e))
		}
	}
	if why := checkEndpoints(b.EtcdEndpoints); why != "" {
		return bad("etcd.endpoints", b.EtcdEndpoints, "%s (allowed: %s)", why, brokerByName["etcd.endpoints"].allowed)
	}
	if b.BrokerHeartbeatIntervalMs >= b.BrokerSessionTimeoutMs {
		return bad("broker.heartbeat.interval.ms", i64(b.BrokerHeartbeatIntervalMs),
			"%d is not below broker.session.timeout.ms (%d): the lease would expire between heartbeats (allowed: 1 to %d)",
			b.BrokerHeartbeatIntervalMs, b.BrokerSessionTimeoutMs, b.BrokerSessionTimeoutMs-1)
	}

	switch {
	case external && c.Controller:
		return bad("etcd.endpoints", b.EtcdEndpoints,
			"set with process.roles=%s: an external etcd replaces the embedded one, so no node has the controller role (allowed: process.roles=broker, or etcd.endpoints empty)", b.ProcessRoles)
	case external:
		for e := range strings.SplitSeq(b.EtcdEndpoints, ",") {
			c.EtcdEndpoints = append(c.EtcdEndpoints, strings.TrimSpace(e))
		}
	case len(voters) > 0:
		for _, v := range voters {
			c.EtcdEndpoints = append(c.EtcdEndpoints, clientURL(v.Host, v.Port))
		}
	case len(c.Bootstrap) > 0 && !c.Controller:
		for _, hp := range c.Bootstrap {
			h, p, _ := net.SplitHostPort(hp)
			n, _ := strconv.Atoi(p)
			c.EtcdEndpoints = append(c.EtcdEndpoints, clientURL(h, n))
		}
	case c.Controller:
		return bad("controller.quorum.voters", "", "empty: a node with the controller role needs the voters, its own entry among them (allowed: %s)", brokerByName["controller.quorum.voters"].allowed)
	default:
		return bad("controller.quorum.voters", "",
			"empty, and so are controller.quorum.bootstrap.servers and etcd.endpoints: a broker needs one of them to join the cluster (allowed: %s)",
			brokerByName["controller.quorum.voters"].allowed)
	}

	if c.Controller {
		names := strings.Split(b.ControllerListenerNames, ",")
		var self *Voter
		for i := range voters {
			if voters[i].ID == c.NodeID {
				self = &voters[i]
			}
		}
		if self == nil {
			return bad("controller.quorum.voters", b.ControllerQuorumVoters,
				"has no entry for node.id %d, which has the controller role (allowed: %d@host:port among the voters)", c.NodeID, c.NodeID)
		}
		host, port, err := b.listener(names[0])
		if err != nil {
			return bad("listeners", b.Listeners, "no %s listener (controller.listener.names), which a node with the controller role needs at its controller.quorum.voters entry %s (allowed: PLAINTEXT://host:port,%s://%s)",
				names[0], net.JoinHostPort(self.Host, strconv.Itoa(self.Port)), names[0], net.JoinHostPort(self.Host, strconv.Itoa(self.Port)))
		}
		if host != self.Host || port != self.Port {
			return bad("listeners", b.Listeners, "the %s listener %s is not this node's controller.quorum.voters entry %d@%s (allowed: the same host:port in both)",
				names[0], net.JoinHostPort(host, strconv.Itoa(port)), self.ID, net.JoinHostPort(self.Host, strconv.Itoa(self.Port)))
		}
		c.ControllerHost, c.ControllerPort = host, port
	}
	return c, nil
}

// clientURL is the etcd client URL of a controller listener: port + 1.
func clientURL(host string, port int) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port+1))
}

// checkCluster checks the cluster keys at Load, with what only the loader
// knows (which keys were set).
func (l *loader) checkCluster(b *Broker) error {
	withOrigin := func(err error) error {
		if e, ok := err.(*Error); ok && e.Origin == "" {
			e.Origin = l.origin[e.Key]
		}
		return err
	}
	if b.ReplicaFetchWaitMaxMs > b.ReplicaLagTimeMaxMs {
		return l.spanError("replica.fetch.wait.max.ms", "replica.lag.time.max.ms",
			"%d is above replica.lag.time.max.ms (%d): a waiting follower would leave the ISR (allowed: 0 to %d)", b.ReplicaFetchWaitMaxMs, b.ReplicaLagTimeMaxMs, b.ReplicaLagTimeMaxMs)
	}
	cluster := b.ClusterMode()
	// Listener names: PLAINTEXT and the controller's.
	lv := strings.TrimSpace(b.Listeners)
	if lv == "" {
		lv = defaultListeners
	}
	ls, _ := parseListeners(lv) // parse validated it
	names := strings.Split(b.ControllerListenerNames, ",")
	hasPlain := false
	for _, e := range ls {
		if e.name == "PLAINTEXT" {
			hasPlain = true
			continue
		}
		if !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, e.name) }) {
			return withOrigin(valueError("listeners", lv, "%s is neither PLAINTEXT nor named by controller.listener.names (%s) (allowed: %s)", e.name, b.ControllerListenerNames, brokerByName["listeners"].allowed))
		}
		if !cluster || !strings.Contains(b.ProcessRoles, "controller") {
			return withOrigin(valueError("listeners", lv, "the %s listener is for a node with process.roles=controller (allowed: PLAINTEXT://host:port)", e.name))
		}
	}
	if !hasPlain && (!cluster || strings.Contains(b.ProcessRoles, "broker") || strings.TrimSpace(b.ProcessRoles) == "") {
		return withOrigin(valueError("listeners", lv, "has no PLAINTEXT listener, which a broker serves clients at (allowed: %s)", brokerByName["listeners"].allowed))
	}
	if !cluster {
		if b.DefaultReplicationFactor > 1 {
			e := valueError("default.replication.factor", i64(int64(b.DefaultReplicationFactor)),
				"%d is out of range (allowed: 1: Strata is a single node); a cluster (process.roles or etcd.endpoints) allows 1 to 32767", b.DefaultReplicationFactor)
			return withOrigin(e)
		}
		if b.BrokerHeartbeatIntervalMs >= b.BrokerSessionTimeoutMs {
			return l.spanError("broker.heartbeat.interval.ms", "broker.session.timeout.ms",
				"%d is not below broker.session.timeout.ms (%d) (allowed: 1 to %d)", b.BrokerHeartbeatIntervalMs, b.BrokerSessionTimeoutMs, b.BrokerSessionTimeoutMs-1)
		}
		return nil
	}
	if v := l.given["node.id"]; v == "-1" {
		return withOrigin(valueError("node.id", "-1", "-1: a cluster node needs its id (allowed: 0 to 2147483647)"))
	}
	if _, err := b.Cluster(); err != nil {
		return withOrigin(err)
	}
	if _, set := l.given["remote.storage.url"]; !set && b.RemoteStorageEnable {
		e := valueError("remote.storage.url", "",
			"unset, so it is this broker's own file://<log.dirs>/remote: in a cluster every broker must share one object store (allowed: a store all brokers reach, such as s3://bucket/prefix or file:///shared/dir; or remote.storage.enable=false)")
		return e
	}
	return nil
}
