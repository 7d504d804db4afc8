package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/clustertest"
	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/internal/wait"
)

// metricValue reads one unlabelled series from /metrics (-1: absent, -2: no
// answer).
func metricValue(t *testing.T, maddr, name string) float64 {
	t.Helper()
	return clustertest.Metric(maddr, name)
}

type topicState struct {
	id         kadm.TopicID
	partitions int
	overrides  map[string]string
}

func describeTopic(t *testing.T, adm *kadm.Client, topic string) topicState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil || tds[topic].Err != nil {
		t.Fatalf("list topics: %v %v", err, tds[topic].Err)
	}
	st := topicState{id: tds[topic].ID, partitions: len(tds[topic].Partitions), overrides: map[string]string{}}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Source == 1 && c.Value != nil { // DYNAMIC_TOPIC_CONFIG
				st.overrides[c.Key] = *c.Value
			}
		}
	}
	return st
}

// wipeDataDir removes meta.db, the logs and the cache: everything local.
func wipeDataDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			t.Fatal(err)
		}
	}
}

// Issue 9, item 3: a topic with retention.ms=-1 whose records are 200 hours
// old, tiered to MinIO; the data directory is lost; `strata tier recover`;
// the broker starts again with default configs (log.retention.hours=168).
// After several retention passes every record is still readable from offset
// 0, and the topic has its original ID, partition count and configs.
func TestTierRecoverKeepsRetentionOfOldRecords(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, append([]string{minioSet(mio, bucket, ""), "metrics.listen=" + maddr}, tierSets...)...)
	const topic = "ancient"
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Created with one override, then altered (retention.ms=-1) and grown:
	// each change must reach the manifest.
	if resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"segment.bytes": kadm.StringPtr("4096")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	alter := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("-1")}}
	if rs, err := adm.AlterTopicConfigs(ctx, alter, topic); err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %v", err, rs)
	}
	if rs, err := adm.UpdatePartitions(ctx, 2, topic); err != nil || rs[topic].Err != nil {
		t.Fatalf("create partitions: %v %v", err, rs)
	}
	old := time.Now().Add(-200 * time.Hour)
	var want []string
	for i := 0; i < 3000; i += 100 {
		var recs []*kgo.Record
		for j := i; j < i+100; j++ {
			v := fmt.Sprintf("old-%05d", j)
			want = append(want, v)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v), Timestamp: old.Add(time.Duration(j) * time.Millisecond)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitTiered(t, p.addr(), topic)
	orig := describeTopic(t, adm, topic)
	if orig.partitions != 2 || orig.overrides["retention.ms"] != "-1" {
		t.Fatalf("before: %+v", orig)
	}
	// The manifests are written in the background: wait until none is
	// pending (a broker without manifests has no such series).
	wait.For(t, time.Minute, "the manifests", func() bool {
		v := metricValue(t, maddr, "strata_tier_manifests_pending")
		return v == 0 || v == -1
	})
	cl.Close()
	p.stop()

	wipeDataDir(t, p.dir)
	out := runStrata(t, p, "tier", "recover")
	t.Logf("recover:\n%s", out)
	for _, s := range []string{"topic " + topic + ": created", "source: manifest version", "committed offsets: lost"} {
		if !strings.Contains(out, s) {
			t.Errorf("recover output lacks %q", s)
		}
	}

	p.start()
	cl2, err := kgo.NewClient(kgo.SeedBrokers(p.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	got := describeTopic(t, kadm.NewClient(cl2), topic)
	if got.id != orig.id || got.partitions != orig.partitions || fmt.Sprint(got.overrides) != fmt.Sprint(orig.overrides) {
		t.Fatalf("after recover: %+v, before: %+v", got, orig)
	}
	// Several retention passes over the recovered partitions (100 ms apart).
	wait.For(t, time.Minute, "5 retention passes", func() bool {
		return metricValue(t, maddr, "strata_tier_retention_passes_total") >= 5
	})
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.addr()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var read []string
	for len(read) < len(want) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records after recover", len(read), len(want))
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch after recover: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { read = append(read, string(r.Value)) })
	}
	if strings.Join(read, ",") != strings.Join(want, ",") {
		t.Fatalf("records differ after recover (%d read)", len(read))
	}
}

// A topic tiered before manifests existed (its manifests deleted here) is
// restored with remote deletion off, and recover says so.
func TestTierRecoverWithoutManifestTurnsDeletionOff(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	p := startProc(t, append([]string{minioSet(mio, bucket, "")}, tierSets...)...)
	kc := kcat(t)
	in := lines(2000)
	runCmd(t, time.Minute, in, kc, "-b", p.addr(), "-P", "-t", "legacy", "-X", "batch.num.messages=50")
	waitTiered(t, p.addr(), "legacy")
	p.stop()
	ctx := context.Background()
	keys, err := mio.ObjectKeys(ctx, bucket, "manifests/")
	if err != nil {
		t.Fatal(err)
	}
	client, err := mio.Client()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := client.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wipeDataDir(t, p.dir)
	out := runStrata(t, p, "tier", "recover")
	for _, s := range []string{"no manifest: remote deletion off", "retention.bytes=-1,retention.ms=-1", "set their retention by hand: legacy"} {
		if !strings.Contains(out, s) {
			t.Errorf("recover output lacks %q:\n%s", s, out)
		}
	}
	p.start()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st := describeTopic(t, kadm.NewClient(cl), "legacy")
	if st.overrides["retention.ms"] != "-1" || st.overrides["retention.bytes"] != "-1" {
		t.Fatalf("restored without a manifest: %+v", st)
	}
}
