package e2e

// kafkajs 2.2.4 (node) against the strata binary: testdata/kafkajs/compat.js
// creates a topic with the admin client, produces with acks -1 to a two-member
// group that consumes from the beginning, then resumes with a restarted member
// (after an idempotent producer) and uses the admin client on group and topic;
// it prints checksums of what it consumed that this test compares with its own
// copy of the records. kafkajs speaks no flexible version: ApiVersions 2,
// Produce <= 7, Fetch <= 11, Metadata <= 6, JoinGroup <= 5, ...
//
// kafkajs comes from `make kafkajs` (into the cache directory); the test finds
// it through STRATATEST_NODE_PATH (a node_modules directory) or that default,
// and skips when node or kafkajs is missing unless STRATATEST_REQUIRE_KAFKAJS=1.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkajsEnv returns node and the node_modules directory holding kafkajs.
func kafkajsEnv(t *testing.T) (node, modules string) {
	t.Helper()
	skip := func(msg string) {
		if os.Getenv("STRATATEST_REQUIRE_KAFKAJS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (STRATATEST_REQUIRE_KAFKAJS=1 makes this a failure)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node not found; make kafkajs needs node and npm")
	}
	modules = os.Getenv("STRATATEST_NODE_PATH")
	if modules == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		modules = filepath.Join(cache, "strata", "node", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "kafkajs", "package.json")); err != nil {
		skip("kafkajs not found in " + modules + "; make kafkajs installs it")
	}
	return node, modules
}

type kafkajsResult struct {
	Created      bool     `json:"created"`
	CreatedAgain bool     `json:"createdAgain"`
	Partitions   int      `json:"partitions"`
	RetentionMs  []string `json:"retentionMs"`
	First        struct {
		Count     int    `json:"count"`
		Dups      int    `json:"dups"`
		PerMember []int  `json:"perMember"`
		Checksum  string `json:"checksum"`
	} `json:"first"`
	Committed []kafkajsOffset `json:"committed"`
	Ends      []kafkajsOffset `json:"ends"`
	Second    struct {
		Count    int    `json:"count"`
		Dups     int    `json:"dups"`
		MinIndex int    `json:"minIndex"`
		Checksum string `json:"checksum"`
	} `json:"second"`
	OffsetsByTimestamp []string `json:"offsetsByTimestamp"`
	ResetOffsets       []string `json:"resetOffsets"`
	Groups             []string `json:"groups"`
	GroupState         []string `json:"groupState"`
	DeletedGroups      []string `json:"deletedGroups"`
	GroupsAfterDelete  []string `json:"groupsAfterDelete"`
	TopicDeleted       bool     `json:"topicDeleted"`
}

type kafkajsOffset struct {
	Partition int32  `json:"partition"`
	Offset    string `json:"offset"`
}

// kafkajsRecord is record i as compat.js produces it.
func kafkajsRecord(topic string, base int64, i int) (key, val, h []byte, ts int64) {
	if i%3 == 0 {
		h = []byte("h" + strconv.Itoa(i))
	}
	return compatKey(i), compatValue(topic, i), h, base + int64(i)
}

// kafkajsChecksum is compat.js's checksum of records [from, to).
func kafkajsChecksum(topic string, base int64, from, to int) string {
	sum := sha256.New()
	put := func(b []byte) {
		sum.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		sum.Write(b)
	}
	for i := from; i < to; i++ {
		k, v, h, ts := kafkajsRecord(topic, base, i)
		put(k)
		put(v)
		put(h)
		put([]byte(strconv.FormatInt(ts, 10)))
	}
	return hex.EncodeToString(sum.Sum(nil))
}

func TestCompatKafkaJS(t *testing.T) {
	node, modules := kafkajsEnv(t)
	_, vp := startCompatBroker(t)
	testKafkaJS(t, node, modules, singleTarget(vp.addr()), func() {
		// Before anything else connects through the proxy: the versions kafkajs used.
		vp.report(t)
		vp.expect(t, map[int16][2]int16{
			18: {0, 2},  // ApiVersions
			0:  {3, 7},  // Produce
			1:  {4, 11}, // Fetch
			3:  {0, 6},  // Metadata
			10: {0, 3},  // FindCoordinator
			11: {0, 5},  // JoinGroup
			14: {0, 3},  // SyncGroup
			12: {0, 3},  // Heartbeat
			8:  {0, 5},  // OffsetCommit
			9:  {0, 4},  // OffsetFetch
			19: {0, 3},  // CreateTopics
			32: {0, 2},  // DescribeConfigs
		})
	})
}

// testKafkaJS runs compat.js against target and checks what it printed, then
// reads what kafkajs produced with franz-go. afterRun, if not nil, runs once
// compat.js has exited.
func testKafkaJS(t *testing.T, node, modules string, target compatTarget, afterRun func()) {
	topic, group := uniqueName(t, "kafkajs"), uniqueName(t, "kafkajs-group")
	const n, m = 3000, 600
	base := time.Now().Add(-time.Hour).UnixMilli()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "kafkajs", "compat.js"))
	level := "INFO"
	if os.Getenv("STRATATEST_CLIENT_DEBUG") == "1" {
		level = "DEBUG"
	}
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+modules,
		"BROKERS="+target.bootstrap(), "RF="+strconv.Itoa(int(target.rf)), "TOPIC="+topic, "GROUP="+group,
		"N="+strconv.Itoa(n), "M="+strconv.Itoa(m), "BASE="+strconv.FormatInt(base, 10),
		"KAFKAJS_LOG="+level)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || t.Failed() || level == "DEBUG" {
		defer func() { t.Logf("kafkajs log:\n%s", stderr.String()) }()
	}
	if err != nil {
		t.Fatalf("node compat.js: %v", err)
	}
	var res kafkajsResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("compat.js printed %q: %v", stdout.String(), err)
	}
	t.Logf("kafkajs: %s", bytes.TrimSpace(stdout.Bytes()))
	if afterRun != nil {
		afterRun()
	}

	if !res.Created || res.CreatedAgain || res.Partitions != 3 {
		t.Errorf("createTopics %v, again %v, %d partitions; want true, false, 3", res.Created, res.CreatedAgain, res.Partitions)
	}
	if len(res.RetentionMs) != 1 || res.RetentionMs[0] != "86400000" {
		t.Errorf("describeConfigs retention.ms: %v", res.RetentionMs)
	}
	if want := kafkajsChecksum(topic, base, 0, n); res.First.Count != n || res.First.Checksum != want {
		t.Errorf("group consumed %d records with checksum %s; want %d, %s", res.First.Count, res.First.Checksum, n, want)
	}
	if res.First.Dups != 0 || len(res.First.PerMember) != 2 || min(res.First.PerMember[0], res.First.PerMember[1]) == 0 {
		t.Errorf("two members consumed %v records, %d twice; want both some, none twice", res.First.PerMember, res.First.Dups)
	}
	if len(res.Committed) != 3 || len(res.Ends) != 3 {
		t.Errorf("committed %v, ends %v: want 3 partitions each", res.Committed, res.Ends)
	} else {
		for i := range res.Committed {
			if res.Committed[i] != res.Ends[i] {
				t.Errorf("committed %v, partition ends %v", res.Committed, res.Ends)
				break
			}
		}
	}
	if want := kafkajsChecksum(topic, base, n, n+m); res.Second.Count != m || res.Second.Dups != 0 || res.Second.MinIndex != n || res.Second.Checksum != want {
		t.Errorf("restarted member: %d records (%d again), lowest index %d, checksum %s; want %d, 0, %d, %s",
			res.Second.Count, res.Second.Dups, res.Second.MinIndex, res.Second.Checksum, m, n, want)
	}

	// kafkajs's resetOffsets commits -2 (earliest) itself, which Kafka stores
	// as it is, and its consumers resolve.
	if want := []string{"0", "0", "0"}; !slices.Equal(res.OffsetsByTimestamp, want) {
		t.Errorf("offsets by record 0's timestamp %v, want %v", res.OffsetsByTimestamp, want)
	}
	if want := []string{"-2", "-2", "-2"}; !slices.Equal(res.ResetOffsets, want) {
		t.Errorf("committed after a reset to earliest: %v, want %v", res.ResetOffsets, want)
	}
	// listGroups asks every broker; a cluster also holds other clients' groups.
	listed := slices.DeleteFunc(slices.Clone(res.Groups), func(g string) bool { return !strings.HasPrefix(g, group+"/") })
	if !slices.Equal(listed, []string{group + "/consumer"}) || (target.brokers == 1 && len(res.Groups) != 1) ||
		!slices.Equal(res.GroupState, []string{group + "/Empty/0"}) || !slices.Equal(res.DeletedGroups, []string{group + "/0"}) ||
		slices.Contains(res.GroupsAfterDelete, group) || (target.brokers == 1 && len(res.GroupsAfterDelete) != 0) {
		t.Errorf("listGroups %v, describeGroups %v, deleteGroups %v, then groups %v", res.Groups, res.GroupState, res.DeletedGroups, res.GroupsAfterDelete)
	}
	if !res.TopicDeleted {
		t.Errorf("deleteTopics: the deleted topic is still listed, or %s is not", topic)
	}
	if t.Failed() {
		return
	}

	// What kafkajs produced (one gzip batch among them), read back with
	// franz-go, is byte-identical to the records.
	cl, err := kgo.NewClient(kgo.SeedBrokers(target.addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	seen := map[int]bool{}
	for len(seen) < n+m && rctx.Err() == nil {
		fs := cl.PollFetches(rctx)
		if errs := fs.Errors(); len(errs) > 0 && rctx.Err() == nil {
			t.Fatalf("franz-go fetch: %v", errs)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var i int
			for _, h := range r.Headers {
				if h.Key == "i" {
					i, _ = strconv.Atoi(string(h.Value))
				}
			}
			var h []byte
			for _, hd := range r.Headers {
				if hd.Key == "h" {
					h = hd.Value
				}
			}
			k, v, wh, ts := kafkajsRecord(topic, base, i)
			if !bytes.Equal(r.Key, k) || !bytes.Equal(r.Value, v) || !bytes.Equal(h, wh) || r.Timestamp.UnixMilli() != ts {
				t.Fatalf("record %d at %d/%d differs from what was produced", i, r.Partition, r.Offset)
			}
			seen[i] = true
		})
	}
	if len(seen) != n+m {
		t.Fatalf("franz-go read %d distinct records, want %d", len(seen), n+m)
	}
}
