package clustere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/checker"
	"github.com/stratalog/strata/internal/clustertest"
	"github.com/stratalog/strata/internal/freeport"
	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/backend"
	"github.com/stratalog/strata/tier"
)

// tierStatus asks node i's metrics listener for the topic's partition 0 as
// `strata tier ls` shows it; ok is false if the node does not answer.
func tierStatus(addr, topic string) (tier.PartitionStatus, bool) {
	resp, err := http.Get("http://" + addr + "/v1/tier?topic=" + topic)
	if err != nil {
		return tier.PartitionStatus{}, false
	}
	defer resp.Body.Close()
	var sts []tier.PartitionStatus
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&sts) != nil {
		return tier.PartitionStatus{}, false
	}
	for _, st := range sts {
		if st.Partition == 0 {
			return st, true
		}
	}
	return tier.PartitionStatus{}, false
}

// finished returns the COPY_FINISHED entries of st.
func finished(st tier.PartitionStatus) []tier.RemoteSegmentStatus {
	var out []tier.RemoteSegmentStatus
	for _, r := range st.Remote {
		if r.State == "COPY_FINISHED" {
			out = append(out, r)
		}
	}
	return out
}

// localStart is the base offset of st's first local segment (-1: none).
func localStart(st tier.PartitionStatus) int64 {
	if len(st.Local) == 0 {
		return -1
	}
	return st.Local[0].BaseOffset
}

// freePort is a loopback port for a node's metrics listener, outside the
// ephemeral range: the node is restarted on it.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Stable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClusterTiering runs one tiered partition (replication factor 3, 4 KiB
// segments, local.retention.bytes=0) on three processes sharing a real MinIO
// bucket, under the history checker, through:
//  1. the leader uploads; its followers trim their local logs below what it
//     uploaded (learned from the bucket);
//  2. kill -9 of the leader mid-stream: the new leader goes on uploading from
//     where the old one stopped, no offset is uploaded twice, and once idle
//     every object in the bucket is owned by an entry of the leader's index;
//  3. a follower's data wiped (partition directories and meta.db; not
//     <log.dirs>/etcd, which holds its etcd membership until metadata.log.dir
//     lands): it re-joins the ISR from the leader's local log start (KIP-1023),
//     not from 0.
//
// A consumer group reads from offset 0 through every leader; the checker
// reports no acknowledged record lost, duplicated or reordered.
func TestClusterTiering(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	url := fmt.Sprintf("s3://%s/cluster?endpoint=%s&access_key=%s&secret_key=%s&region=us-east-1",
		bucket, mio.Endpoint, mio.AccessKey, mio.SecretKey)
	opts, metrics := tieredCluster(t, url, "remote.chunk.bytes=16384", "remote.orphan.grace.ms=1000")
	c := clustertest.Start(t, opts)
	const topic = "tiered"
	ctx := context.Background()
	cl := checker.Client{Brokers: c.Bootstrap(), Topic: topic, Dial: c.DialContext}
	if err := checker.CreateTopic(ctx, cl, 1, 3); err != nil {
		t.Fatal(err)
	}
	status := func(i int) tier.PartitionStatus {
		st, _ := tierStatus(metrics[i], topic)
		return st
	}

	const d = 40 * time.Second
	run := checker.StartRun(ctx, checker.ProduceConfig{Client: cl, Producers: 2, Duration: d, Rate: 150, Name: "t", DeliveryTimeout: 2 * time.Minute},
		checker.ConsumeConfig{Client: cl, Group: "g-" + topic, Duration: d + 10*time.Second})

	// 1. The leader uploads; each follower learns it and trims its log.
	leader := leaderOf(t, c, topic, 0)
	wait.For(t, 2*time.Minute, "three segments uploaded by the leader", func() bool { return len(finished(status(leader))) >= 3 })
	for i := range 3 {
		if i == leader {
			continue
		}
		wait.For(t, 2*time.Minute, fmt.Sprintf("node %d trimming its local log below the leader's uploads", i+1), func() bool {
			st := status(i)
			return localStart(st) > 0 && len(finished(st)) > 0 && localStart(st) <= finished(st)[len(finished(st))-1].EndOffset+1
		})
	}
	oldHighest := status(leader).HighestOffset

	// 2. kill -9 the leader; the new one goes on from where it stopped.
	t.Logf("kill -9 node %d, leader of %s-0 (highest remote offset %d)", leader+1, topic, oldHighest)
	c.Kill9(leader)
	wait.For(t, time.Minute, "a new leader", func() bool { return leaderOf(t, c, topic, 0) != leader })
	next := leaderOf(t, c, topic, 0)
	wait.For(t, 2*time.Minute, "the new leader uploading past the old one's last offset", func() bool {
		return status(next).HighestOffset > oldHighest+100
	})
	c.Restart(leader)

	// 3. Wipe a follower's partition data and meta.db.
	follower := -1
	for i := range 3 {
		if i != next {
			follower = i
			break
		}
	}
	t.Logf("wipe node %d's partition data", follower+1)
	c.Kill9(follower)
	wipePartitions(t, c.DataDir(follower))
	c.Restart(follower)
	wait.For(t, 2*time.Minute, "the wiped follower back in the ISR", func() bool { return inISR(t, c, topic, int32(follower+1)) })
	// Its status lists local segments once its tier has seen its log and a
	// record arrived since it restarted.
	wait.For(t, time.Minute, "the wiped follower's local segments", func() bool { return localStart(status(follower)) >= 0 })
	wst, lst := status(follower), status(leaderOf(t, c, topic, 0))
	t.Logf("wiped follower: local log from %d; leader: remote %d..%d, local from %d", localStart(wst), lst.LogStartOffset, lst.HighestOffset, localStart(lst))
	if localStart(wst) <= 0 {
		t.Fatalf("the wiped follower copied the whole log: its local log starts at %d", localStart(wst))
	}
	// It restarted at the leader's local log start then, which the remote
	// tier reached: no offset is in neither.
	if localStart(wst) > lst.HighestOffset+1 || lst.LogStartOffset != 0 {
		t.Fatalf("the wiped follower starts at %d, the remote tier holds %d..%d", localStart(wst), lst.LogStartOffset, lst.HighestOffset)
	}

	finishClean(t, ctx, run, cl, topic)

	// Idle: the leader's index has disjoint segments and owns every object.
	bucketOwnedByLeader(t, url, func() tier.PartitionStatus { return status(leaderOf(t, c, topic, 0)) })
}

// bucketOwnedByLeader waits until every object in the bucket (manifests
// apart) is owned by an entry of the leader's index (status), then checks
// that its COPY_FINISHED segments are disjoint and start at offset 0: no
// orphan, no offset uploaded twice, none missing at the start.
func bucketOwnedByLeader(t *testing.T, url string, status func() tier.PartitionStatus) {
	t.Helper()
	ctx := context.Background()
	store, err := backend.Open(ctx, url, backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Minute, "every object in the bucket owned by the leader's index", func() bool {
		owned := map[string]bool{}
		for _, k := range keysOf(status()) {
			owned[k] = true
		}
		var orphans []string
		err := store.List(ctx, "", func(o remotestore.ObjectInfo) error {
			if !strings.HasPrefix(o.Key, "manifests/") && !owned[o.Key] {
				orphans = append(orphans, o.Key)
			}
			return nil
		})
		if err != nil || len(orphans) > 0 {
			t.Logf("orphans: %v (%v)", orphans, err)
			return false
		}
		return true
	})
	segs := finished(status())
	if len(segs) == 0 {
		t.Fatal("the leader's index has no finished segment")
	}
	for j := 1; j < len(segs); j++ {
		if segs[j].BaseOffset <= segs[j-1].EndOffset {
			t.Fatalf("offsets uploaded twice: %d..%d and %d..%d", segs[j-1].BaseOffset, segs[j-1].EndOffset, segs[j].BaseOffset, segs[j].EndOffset)
		}
	}
	if segs[0].BaseOffset != 0 {
		t.Fatalf("the remote tier starts at %d", segs[0].BaseOffset)
	}
}

// tieredCluster is three brokers sharing the object store at url, with
// 4 KiB segments, local.retention.bytes=0 and fast tiering rounds, each with
// a metrics listener (metrics[i]) for its tier status; extra --set keys
// come last.
func tieredCluster(t *testing.T, url string, extra ...string) (clustertest.Options, []string) {
	var metrics []string
	for range 3 {
		metrics = append(metrics, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	return clustertest.Options{
		Brokers:   3,
		RemoteURL: url,
		Extra: append([]string{
			fmt.Sprintf("broker.session.timeout.ms=%d", sessionMs),
			"broker.heartbeat.interval.ms=500",
			"replica.lag.time.max.ms=5000",
			"replica.fetch.backoff.ms=100",
			"offsets.topic.num.partitions=3",
			"log.segment.bytes=4096",
			"log.local.retention.bytes=0",
			"remote.log.manager.task.interval.ms=200",
			"log.retention.check.interval.ms=200",
		}, extra...),
		PerNode:   func(i int) []string { return []string{"metrics.listen=" + metrics[i]} },
		WaitReady: clustertest.MetadataListsAll,
	}, metrics
}

// keysOf lists the keys the index entries of st own.
func keysOf(st tier.PartitionStatus) []string {
	var out []string
	for _, r := range st.Remote {
		out = append(out, r.LogKey, r.SidecarKey)
	}
	return out
}

// wipePartitions removes a stopped node's partition directories and
// meta.db, keeping <log.dirs>/etcd (the node's etcd membership).
func wipePartitions(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "etcd" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// inISR reports whether broker id is in the ISR of topic-0.
func inISR(t *testing.T, c *clustertest.Cluster, topic string, id int32) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.Dialer(c.DialContext))
	if err != nil {
		return false
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return false
	}
	pd, ok := md.Topics[topic].Partitions[0]
	if !ok {
		return false
	}
	for _, r := range pd.ISR {
		if r == id {
			return true
		}
	}
	return false
}
