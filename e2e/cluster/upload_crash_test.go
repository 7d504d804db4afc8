package clustere2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/checker"
	"github.com/stratalog/strata/internal/clustertest"
	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/tier"
)

// The leader of a tiered partition dies between the steps of an upload
// (STRATATEST_CRASH_AT stops it there as kill -9 would): after its entry
// says COPY_STARTED, after the segment's .log is in the bucket, after its
// sidecar is too. Under the history checker, a new leader goes on
// uploading; when the old leader comes back as a follower, nothing is lost,
// no offset is uploaded twice, and every object in the bucket is owned by
// the leader's index: an abandoned .log is rolled back by the broker that
// wrote it, a complete upload is learned, not uploaded again.
func TestClusterLeaderDiesMidUpload(t *testing.T) {
	for _, point := range []string{"upload-copy-started", "upload-log-put", "upload-idx-put"} {
		t.Run(point, func(t *testing.T) { leaderDiesMidUpload(t, point) })
	}
}

func leaderDiesMidUpload(t *testing.T, point string) {
	url := "file://" + t.TempDir()
	// The reconciler must not be what cleans up.
	opts, metrics := tieredCluster(t, url, "remote.orphan.grace.ms=600000")
	// Node 1, the partition's leader, dies at its first upload.
	opts.PerNodeEnv = func(i int) []string {
		if i == 0 {
			return []string{"STRATATEST_CRASH_AT=" + point}
		}
		return nil
	}
	c := clustertest.Start(t, opts)
	const topic = "upcrash"
	ctx := context.Background()
	createAssigned(t, c, topic, [][]int32{{1, 2, 3}}, map[string]string{"remote.storage.enable": "true"})
	status := func(i int) tier.PartitionStatus {
		st, _ := tierStatus(metrics[i], topic)
		return st
	}

	cl := checker.Client{Brokers: c.Bootstrap(), Topic: topic, Dial: c.DialContext}
	const d = 20 * time.Second
	run := checker.StartRun(ctx, checker.ProduceConfig{Client: cl, Producers: 2, Duration: d, Rate: 150, Name: "u", DeliveryTimeout: 2 * time.Minute},
		checker.ConsumeConfig{Client: cl, Group: "g-" + topic, Duration: d + 10*time.Second})

	wait.For(t, time.Minute, "node 1 to stop at "+point, func() bool { return !c.Running(0) })
	logged, _ := os.ReadFile(c.LogPath(0))
	if !strings.Contains(string(logged), "STRATATEST_CRASH_AT="+point) {
		t.Fatalf("node 1 exited, but not at %s:\n%s", point, logged)
	}
	wait.For(t, time.Minute, "a new leader", func() bool { return leaderOf(t, c, topic, 0) != 0 })
	next := leaderOf(t, c, topic, 0)
	wait.For(t, 2*time.Minute, "the new leader uploading", func() bool { return len(finished(status(next))) >= 2 })
	c.SetEnv(0)
	c.Restart(0)
	wait.For(t, 2*time.Minute, "node 1 back in the ISR", func() bool { return inISR(t, c, topic, 1) })

	finishClean(t, ctx, run, cl, topic)
	bucketOwnedByLeader(t, url, func() tier.PartitionStatus { return status(leaderOf(t, c, topic, 0)) })
	if point == "upload-log-put" {
		logged, _ := os.ReadFile(c.LogPath(0))
		if !strings.Contains(string(logged), "rolled back an interrupted upload") {
			t.Errorf("node 1 did not roll back the upload it abandoned after the .log")
		}
	}
}
