package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// node1 is node 1 of the issue's three-node command line.
var node1 = []string{
	"node.id=1", "process.roles=broker,controller",
	"listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
	"controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293",
	"remote.storage.url=file:///shared/remote",
}

func with(base []string, extra ...string) []string {
	return append(slices.Clone(base), extra...)
}

func TestClusterFromTheIssuesCommandLine(t *testing.T) {
	b := mustLoad(t, "", nil, node1)
	if !b.ClusterMode() {
		t.Fatal("not in cluster mode")
	}
	c, err := b.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != 1 || !c.Broker || !c.Controller || c.ControllerHost != "127.0.0.1" || c.ControllerPort != 9093 {
		t.Errorf("cluster = %+v", c)
	}
	wantVoters := []Voter{{1, "127.0.0.1", 9093}, {2, "127.0.0.1", 9193}, {3, "127.0.0.1", 9293}}
	if !slices.Equal(c.Voters, wantVoters) {
		t.Errorf("voters = %+v", c.Voters)
	}
	wantEP := []string{"http://127.0.0.1:9094", "http://127.0.0.1:9194", "http://127.0.0.1:9294"}
	if !slices.Equal(c.EtcdEndpoints, wantEP) {
		t.Errorf("endpoints = %v, want %v (the CONTROLLER port + 1)", c.EtcdEndpoints, wantEP)
	}
	if c.SessionTimeout != 9*time.Second || c.HeartbeatInterval != 2*time.Second || c.UncleanLeaderElection {
		t.Errorf("defaults: %+v", c)
	}
	if a, _ := b.ListenAddress(); a != "127.0.0.1:9092" {
		t.Errorf("ListenAddress = %q, want the PLAINTEXT listener", a)
	}
	if h, p, _ := b.Advertised(); h != "127.0.0.1" || p != 9092 {
		t.Errorf("Advertised = %s:%d", h, p)
	}
	if b.BrokerID != 1 {
		t.Errorf("node.id did not set the broker id: %d", b.BrokerID)
	}
}

func TestClusterDefaultsAndSingleNode(t *testing.T) {
	b := Default()
	if b.ClusterMode() {
		t.Fatal("default is a cluster")
	}
	if _, err := b.Cluster(); err == nil {
		t.Error("Cluster() of a single node did not fail")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"offsets rf", b.OffsetsTopicReplicationFactor, int16(3)},
		{"min isr", b.MinInsyncReplicas, int64(1)},
		{"lag", b.ReplicaLagTimeMaxMs, int64(30000)},
		{"fetch max", b.ReplicaFetchMaxBytes, int64(1048576)},
		{"fetch min", b.ReplicaFetchMinBytes, int64(1)},
		{"fetch wait", b.ReplicaFetchWaitMaxMs, int64(500)},
		{"response max", b.ReplicaFetchResponseMaxBytes, int64(10485760)},
		{"fetchers", b.NumReplicaFetchers, int64(1)},
		{"hw checkpoint", b.ReplicaHighWatermarkCheckpointIntMs, int64(5000)},
		{"controlled shutdown", b.ControlledShutdownEnable, true},
		{"session", b.BrokerSessionTimeoutMs, int64(9000)},
		{"heartbeat", b.BrokerHeartbeatIntervalMs, int64(2000)},
		{"listener names", b.ControllerListenerNames, "CONTROLLER"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// The topic keys now apply, with the broker defaults.
	topic, err := mustLoad(t, "", nil, []string{"min.insync.replicas=2", "unclean.leader.election.enable=true"}).Resolve(map[string]string{"min.insync.replicas": "3"})
	if err != nil || topic.MinInsyncReplicas != 3 || !topic.UncleanLeaderElectionEnable {
		t.Errorf("topic = %+v, %v", topic, err)
	}
}

func TestClusterBrokerOnlyAndExternalEtcd(t *testing.T) {
	b := mustLoad(t, "", nil, []string{"node.id=4", "process.roles=broker", "listeners=PLAINTEXT://127.0.0.1:9392",
		"controller.quorum.bootstrap.servers=127.0.0.1:9093, 127.0.0.1:9193", "remote.storage.url=s3://b/p", "broker.rack=r1"})
	c, err := b.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if c.Controller || !c.Broker || c.Rack != "r1" || !slices.Equal(c.EtcdEndpoints, []string{"http://127.0.0.1:9094", "http://127.0.0.1:9194"}) {
		t.Errorf("broker-only: %+v", c)
	}
	b = mustLoad(t, "", nil, []string{"broker.id=5", "etcd.endpoints=http://10.0.0.1:2379,https://10.0.0.2:2379", "remote.storage.enable=false"})
	c, err = b.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if c.Controller || !c.Broker || c.NodeID != 5 || !slices.Equal(c.EtcdEndpoints, []string{"http://10.0.0.1:2379", "https://10.0.0.2:2379"}) {
		t.Errorf("external etcd: %+v", c)
	}
	// node.id and broker.id agreeing is fine.
	mustLoad(t, "", nil, []string{"broker.id=5", "node.id=5"})
}

// Every rule of the cluster keys stops Load with a message naming the key.
func TestClusterValidation(t *testing.T) {
	tests := []struct {
		name string
		sets []string
		want []string
	}{
		{"node.id vs broker.id", []string{"broker.id=1", "node.id=2"}, []string{"node.id: 2 differs from broker.id (1)", "from --set"}},
		{"unknown role", []string{"process.roles=worker"}, []string{`process.roles: "worker" is not a role`, "allowed: broker, controller"}},
		{"role twice", []string{"process.roles=broker,broker"}, []string{"process.roles:", "twice"}},
		{"voters syntax", with(node1, "controller.quorum.voters=1@127.0.0.1"), []string{"controller.quorum.voters:", "id@host:port"}},
		{"voters id", with(node1, "controller.quorum.voters=x@127.0.0.1:9093"), []string{"controller.quorum.voters:", "the id"}},
		{"voters duplicate id", with(node1, "controller.quorum.voters=1@127.0.0.1:9093,1@127.0.0.1:9193"), []string{"controller.quorum.voters:", "id 1 is given twice"}},
		{"voter port", with(node1, "controller.quorum.voters=1@127.0.0.1:65535"), []string{"controller.quorum.voters:", "port + 1"}},
		{"controller without its voter", with(node1, "node.id=7"), []string{"controller.quorum.voters:", "no entry for node.id 7"}},
		{"controller listener elsewhere", with(node1, "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9999"), []string{"listeners:", "not this node's controller.quorum.voters entry 1@127.0.0.1:9093"}},
		{"controller without listener", with(node1, "listeners=PLAINTEXT://127.0.0.1:9092"), []string{"listeners:", "no CONTROLLER listener"}},
		{"controller without voters", []string{"process.roles=controller", "listeners=CONTROLLER://127.0.0.1:9093", "remote.storage.url=s3://b"}, []string{"controller.quorum.voters: empty"}},
		{"broker alone", []string{"process.roles=broker", "remote.storage.url=s3://b"}, []string{"controller.quorum.voters: empty", "etcd.endpoints"}},
		{"external etcd with controller", with(node1, "etcd.endpoints=http://127.0.0.1:2379"), []string{"etcd.endpoints:", "controller role", "external etcd replaces the embedded one"}},
		{"bad endpoint", []string{"etcd.endpoints=127.0.0.1:2379"}, []string{"etcd.endpoints:", "http://host:port"}},
		{"bad bootstrap", []string{"process.roles=broker", "controller.quorum.bootstrap.servers=nohost", "remote.storage.url=s3://b"}, []string{"controller.quorum.bootstrap.servers:", "host:port"}},
		{"node.id -1", with(node1, "node.id=-1"), []string{"node.id: -1: a cluster node needs its id"}},
		{"heartbeat vs session", with(node1, "broker.heartbeat.interval.ms=9000"), []string{"broker.heartbeat.interval.ms: 9000 is not below broker.session.timeout.ms (9000)"}},
		{"heartbeat vs session single", []string{"broker.session.timeout.ms=1000"}, []string{"broker.heartbeat.interval.ms: 2000 is not below broker.session.timeout.ms (1000)", "from --set"}},
		{"per-broker remote store", node1[:4], []string{"remote.storage.url: unset", "share one object store"}},
		{"controller listener on a single node", []string{"listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"}, []string{"listeners:", "process.roles=controller"}},
		{"unnamed listener", with(node1, "listeners=PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.1:9093"), []string{"listeners:", "INTERNAL is neither PLAINTEXT nor named by controller.listener.names"}},
		{"SSL beside", with(node1, "listeners=PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093"), []string{"listeners:", "Strata serves PLAINTEXT only"}},
		{"no PLAINTEXT on a broker", with(node1, "listeners=CONTROLLER://127.0.0.1:9093"), []string{"listeners:", "no PLAINTEXT listener"}},
		{"listener twice", with(node1, "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094"), []string{"listeners:", "CONTROLLER twice"}},
		{"same port twice", with(node1, "listeners=PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:9093"), []string{"listeners:", "binds 127.0.0.1:9093 twice"}},
		{"rf on a single node", []string{"default.replication.factor=3"}, []string{"default.replication.factor: 3 is out of range (allowed: 1: Strata is a single node)"}},
		{"fetch wait above lag", []string{"replica.fetch.wait.max.ms=40000"}, []string{"replica.fetch.wait.max.ms: 40000 is above replica.lag.time.max.ms (30000)"}},
		{"fetchers", []string{"num.replica.fetchers=0"}, []string{"num.replica.fetchers: 0 is out of range (allowed: 1 to 2147483647)"}},
		{"offsets rf", []string{"offsets.topic.replication.factor=0"}, []string{"offsets.topic.replication.factor: 0 is out of range"}},
		{"listener names", []string{"controller.listener.names=PLAINTEXT"}, []string{"controller.listener.names:", "client listener"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("", nil, tc.sets)
			if err == nil {
				t.Fatalf("Load(%v) succeeded", tc.sets)
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error %T is not *Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestClusterAccepted(t *testing.T) {
	ok := [][]string{
		with(node1, "default.replication.factor=3", "broker.session.timeout.ms=1500", "broker.heartbeat.interval.ms=500"),
		with(node1, "remote.storage.url=", "remote.storage.enable=false")[0:4], // not tiering: no shared store needed
		{"process.roles=controller", "node.id=2", "listeners=CONTROLLER://127.0.0.1:9193",
			"controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9193", "remote.storage.url=s3://b"},
		with(node1, "controller.listener.names=CTRL", "listeners=PLAINTEXT://127.0.0.1:9092,CTRL://127.0.0.1:9093"),
	}
	ok[1] = append(ok[1], "remote.storage.enable=false")
	for _, sets := range ok {
		b, err := Load("", nil, sets)
		if err != nil {
			t.Errorf("Load(%v): %v", sets, err)
			continue
		}
		if _, err := b.Cluster(); err != nil {
			t.Errorf("Cluster(%v): %v", sets, err)
		}
	}
}
