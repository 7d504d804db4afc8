package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stratalog/strata/broker"
	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/backend"
	"github.com/stratalog/strata/tier"
)

// tierFlags are the flags every tier subcommand takes: the broker's config.
type tierFlags struct {
	fs      *flag.FlagSet
	cfgPath *string
	sets    multiFlag
	dryRun  *bool
	grace   *time.Duration
}

func newTierFlags(name string, stderr io.Writer) *tierFlags {
	f := &tierFlags{fs: flag.NewFlagSet("tier "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.cfgPath = f.fs.String("config", "", "the broker's properties file")
	f.fs.Var(&f.sets, "set", "key=value, as for strata serve (repeatable)")
	f.dryRun = f.fs.Bool("dry-run", false, "reconcile: list orphans without deleting them")
	f.grace = f.fs.Duration("grace", -1, "reconcile: minimum age of an orphan (default remote.orphan.grace.ms)")
	return f
}

// parseInterspersed parses flags and positional arguments in any order.
func (f *tierFlags) parseInterspersed(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		if f.fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
}

func tierCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: strata tier ls|recover|reconcile [flags]")
	}
	f := newTierFlags(args[0], stderr)
	pos, err := f.parseInterspersed(args[1:])
	if err != nil {
		return err
	}
	cfg, err := config.Load(*f.cfgPath, os.Environ(), f.sets)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	switch args[0] {
	case "ls":
		topic := ""
		if len(pos) > 0 {
			topic = pos[0]
		}
		return tierLs(ctx, cfg, topic, stdout)
	case "recover":
		return tierRecover(ctx, cfg, stdout)
	case "reconcile":
		grace := *f.grace
		if grace < 0 {
			grace = time.Duration(cfg.RemoteOrphanGraceMs) * time.Millisecond
		}
		return tierReconcile(ctx, cfg, grace, *f.dryRun, stdout)
	}
	return fmt.Errorf("unknown tier command %q (ls, recover, reconcile)", args[0])
}

// openOffline opens meta.db and the bucket for a command that needs the broker
// stopped; done closes them.
func openOffline(ctx context.Context, cfg *config.Broker, what string) (*metadata.Store, remotestore.Store, func(), error) {
	meta, err := metadata.Open(filepath.Join(cfg.LogDir(), "meta.db"))
	if errors.Is(err, metadata.ErrLocked) {
		return nil, nil, nil, fmt.Errorf("%s needs the broker stopped: %w", what, err)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := backend.Open(ctx, cfg.RemoteStorageURL, backend.Options{Timeouts: remotestore.Timeouts{
		Request: time.Duration(cfg.RemoteStorageRequestTimeoutMs) * time.Millisecond,
		Stall:   time.Duration(cfg.RemoteStorageStallTimeoutMs) * time.Millisecond,
	}})
	if err != nil {
		meta.Close()
		return nil, nil, nil, fmt.Errorf("remote.storage.url: %w", err)
	}
	return meta, store, func() { meta.Close() }, nil
}

func tierRecover(ctx context.Context, cfg *config.Broker, stdout io.Writer) error {
	meta, store, done, err := openOffline(ctx, cfg, "tier recover")
	if err != nil {
		return err
	}
	defer done()
	rep, err := tier.Recover(ctx, store, meta, nil)
	if err != nil {
		return err
	}
	if err := startLocalLogsAfterRemote(cfg.LogDir(), meta, rep.Partitions, stdout); err != nil {
		return err
	}
	printRecoverReport(stdout, rep)
	return nil
}

// startLocalLogsAfterRemote makes each recovered partition whose local log is
// lost (no directory, or only empty segments) start at the offset after its
// last remote one: an empty segment file named for that offset, which the
// broker opens as the active segment. Otherwise the local log would restart
// at offset 0 and hide the remote records behind it. A local log with data
// is left as it is.
func startLocalLogsAfterRemote(logDir string, meta *metadata.Store, parts []metadata.TopicPartition, stdout io.Writer) error {
	for _, tp := range parts {
		segs, err := meta.RemoteSegments(tp.Topic, tp.Partition)
		if err != nil {
			return err
		}
		next := int64(-1)
		for _, s := range segs {
			if s.State == metadata.CopyFinished {
				next = max(next, s.EndOffset+1)
			}
		}
		if next <= 0 {
			continue
		}
		dir := filepath.Join(logDir, tp.Topic+"-"+strconv.Itoa(int(tp.Partition)))
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		empty := true
		for _, e := range ents {
			if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".log") && info.Size() > 0 {
				empty = false
			}
		}
		if !empty {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.log", next)), nil, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "local log of %s-%d starts at offset %d, after the remote tier\n", tp.Topic, tp.Partition, next)
	}
	return nil
}

// printRecoverReport says, topic by topic, where each restored topic's ID,
// partitions and configs came from, what was attached and left alone, and
// whether its committed offsets were kept.
func printRecoverReport(w io.Writer, rep tier.RecoverReport) {
	fmt.Fprintf(w, "recovered %d remote segments in %d partitions of %d topics\n", rep.Segments, len(rep.Partitions), len(rep.Topics))
	var lost []string
	for _, t := range rep.Topics {
		verb := "kept"
		switch {
		case t.Created:
			verb = "created"
		case t.Grown:
			verb = "kept (partition count raised)"
		}
		fmt.Fprintf(w, "topic %s: %s, id %s, %d partitions, configs %s\n", t.Name, verb, uuidString(t.ID), t.Partitions, configString(t.Configs))
		switch t.Source {
		case tier.SourceMetadata:
			fmt.Fprintf(w, "  source: the metadata store (left as it was)\n")
		case tier.SourceManifest:
			fmt.Fprintf(w, "  source: manifest version %d\n", t.ManifestVersion)
		default:
			fmt.Fprintf(w, "  source: no manifest: remote deletion off (retention.ms=-1, retention.bytes=-1 set as overrides); set retention by hand, e.g.\n"+
				"    kafka-configs.sh --bootstrap-server HOST:PORT --alter --entity-type topics --entity-name %s --add-config retention.ms=MS,retention.bytes=BYTES\n", t.Name)
		}
		fmt.Fprintf(w, "  segments attached: %d", t.Segments)
		if t.NoIDSegments > 0 {
			fmt.Fprintf(w, " (%d written before sidecars recorded the topic ID)", t.NoIDSegments)
		}
		if t.LeftAlone > 0 {
			fmt.Fprintf(w, "; left alone: %d (they belong to another topic ID)", t.LeftAlone)
		}
		fmt.Fprintln(w)
		switch {
		case t.CommittedOffsets > 0:
			fmt.Fprintf(w, "  committed offsets: %d kept\n", t.CommittedOffsets)
		case t.Created:
			fmt.Fprintf(w, "  committed offsets: lost (consumers start from auto.offset.reset)\n")
			lost = append(lost, t.Name)
		default:
			fmt.Fprintf(w, "  committed offsets: none\n")
		}
		for _, n := range t.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	var byHand []string
	for _, t := range rep.Topics {
		if t.Source == tier.SourceNone {
			byHand = append(byHand, t.Name)
		}
	}
	if len(byHand) > 0 {
		fmt.Fprintf(w, "topics without a manifest, restored with remote deletion off: set their retention by hand: %s\n", strings.Join(byHand, ", "))
	}
	if len(lost) > 0 {
		fmt.Fprintf(w, "committed consumer offsets are lost for: %s\n", strings.Join(lost, ", "))
	}
	for _, k := range rep.LeftAlone {
		fmt.Fprintf(w, "left alone (another topic ID; reconcile deletes it after the grace period): %s\n", k)
	}
	for _, o := range rep.Orphans {
		fmt.Fprintf(w, "orphan (reconcile deletes it after the grace period): %s\n", o)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "skipped: %s\n", p)
	}
}

// uuidString formats a topic ID as a UUID.
func uuidString(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// configString formats config overrides as k=v,... sorted ("none" when empty).
func configString(cfg map[string]string) string {
	if len(cfg) == 0 {
		return "none (broker defaults)"
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + cfg[k])
	}
	return b.String()
}

func tierReconcile(ctx context.Context, cfg *config.Broker, grace time.Duration, dryRun bool, stdout io.Writer) error {
	meta, store, done, err := openOffline(ctx, cfg, "tier reconcile")
	if err != nil {
		return err
	}
	defer done()
	keys, err := tier.Reconcile(ctx, store, meta, grace, dryRun)
	if err != nil {
		return err
	}
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	for _, k := range keys {
		fmt.Fprintf(stdout, "%s %s\n", verb, k)
	}
	fmt.Fprintf(stdout, "%d orphans (grace %s)\n", len(keys), grace)
	return nil
}

// tierLs asks the running broker (through metrics.listen) or, when none runs,
// reads meta.db and the partition directories without changing anything.
func tierLs(ctx context.Context, cfg *config.Broker, topic string, stdout io.Writer) error {
	meta, err := metadata.Open(filepath.Join(cfg.LogDir(), "meta.db"))
	var (
		sts  []tier.PartitionStatus
		dels []broker.DeletionStatus
	)
	switch {
	case errors.Is(err, metadata.ErrLocked):
		if cfg.MetricsListen == "" {
			return errors.New("the broker is running and metrics.listen is not set: set it to query the running broker, or stop the broker")
		}
		if err := askBroker(ctx, cfg.MetricsListen, "/v1/tier?topic="+url.QueryEscape(topic), &sts); err != nil {
			return err
		}
		if err := askBroker(ctx, cfg.MetricsListen, "/v1/tier/deletions", &dels); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		defer meta.Close()
		if sts, err = offlineStatus(meta, cfg.LogDir(), topic); err != nil {
			return err
		}
		if dels, err = broker.PendingDeletions(meta); err != nil {
			return err
		}
	}
	printStatus(stdout, sts)
	printDeletions(stdout, dels, topic)
	return nil
}

// askBroker GETs path from the running broker's metrics listener and decodes
// the JSON answer into out.
func askBroker(ctx context.Context, addr, path string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking the running broker: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("asking the running broker: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// printDeletions shows the backlog of deleted topics' cleanup.
func printDeletions(w io.Writer, dels []broker.DeletionStatus, topic string) {
	for _, d := range dels {
		if topic != "" && d.Topic != topic {
			continue
		}
		if d.RemoteOnly {
			fmt.Fprintf(w, "topic %s (id %s): remote storage disabled at %s: remote data deletion pending, %d remote segments left",
				d.Topic, d.TopicID, d.DeletedAt, d.RemoteSegments)
		} else {
			fmt.Fprintf(w, "deleted topic %s (id %s, %d partitions) deleted at %s: cleanup pending, %d remote segments left",
				d.Topic, d.TopicID, d.Partitions, d.DeletedAt, d.RemoteSegments)
		}
		if d.LastError != "" {
			fmt.Fprintf(w, "; last error: %s", d.LastError)
		}
		fmt.Fprintln(w)
	}
}

// deletionsHandler serves /v1/tier/deletions: the pending topic deletions as JSON.
func deletionsHandler(srv *broker.Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		dels, err := srv.PendingDeletions()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(dels)
	}
}

// The tier is the broker's remote tier.
var _ broker.Tier = (*tier.Manager)(nil)

// tierStatusHandler serves /v1/tier?topic=T (every topic when empty) as JSON.
func tierStatusHandler(srv *broker.Server, mgr *tier.Manager) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if mgr == nil {
			http.Error(w, "this broker runs without a remote tier", http.StatusNotFound)
			return
		}
		topics := []string{r.URL.Query().Get("topic")}
		if topics[0] == "" {
			topics = srv.TopicNames()
		}
		var out []tier.PartitionStatus
		for _, t := range topics {
			out = append(out, mgr.Status(t)...)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}
}

// offlineStatus builds the status from meta.db and the segment files on disk.
func offlineStatus(meta *metadata.Store, logDir, topic string) ([]tier.PartitionStatus, error) {
	topics, err := meta.Topics()
	if err != nil {
		return nil, err
	}
	var out []tier.PartitionStatus
	for _, t := range topics {
		if topic != "" && t.Name != topic {
			continue
		}
		for p := int32(0); p < t.Partitions; p++ {
			st := tier.PartitionStatus{Topic: t.Name, Partition: p, LogStartOffset: -1, HighestOffset: -1}
			segs, err := meta.RemoteSegments(t.Name, p)
			if err != nil {
				return nil, err
			}
			for _, s := range segs {
				st.Remote = append(st.Remote, tier.RemoteSegmentStatus{BaseOffset: s.BaseOffset, EndOffset: s.EndOffset, Size: s.Size,
					State: s.State.String(), UploadID: s.UploadID, CRC32C: s.CRC32C, MaxTimestamp: s.MaxTimestamp})
				if s.State == metadata.CopyFinished {
					if st.LogStartOffset < 0 {
						st.LogStartOffset = s.BaseOffset
					}
					st.HighestOffset = s.EndOffset
				}
			}
			st.Local = localSegmentFiles(filepath.Join(logDir, t.Name+"-"+strconv.Itoa(int(p))), st.HighestOffset)
			for i, l := range st.Local {
				if i < len(st.Local)-1 && !l.Uploaded {
					st.CopyLagSegments++
					st.CopyLagBytes += l.Size
				}
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// localSegmentFiles lists a partition directory's .log files; the last is active.
func localSegmentFiles(dir string, highest int64) []tier.LocalSegmentStatus {
	ents, _ := os.ReadDir(dir)
	var out []tier.LocalSegmentStatus
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".log") || len(name) != 24 {
			continue
		}
		base, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, tier.LocalSegmentStatus{BaseOffset: base, Size: info.Size(), NextOffset: -1})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].BaseOffset < out[j].BaseOffset })
	for i := range out {
		if i+1 < len(out) {
			out[i].NextOffset = out[i+1].BaseOffset
			out[i].Uploaded = out[i].NextOffset-1 <= highest
		} else {
			out[i].Active = true
		}
	}
	return out
}

func printStatus(w io.Writer, sts []tier.PartitionStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	costShown := map[string]bool{}
	for _, st := range sts {
		if c := st.TopicCost; c != nil && !costShown[st.Topic] {
			costShown[st.Topic] = true
			fmt.Fprintf(tw, "%s	cost $%.4f/day	remote %d bytes, read %d bytes	requests put %d, get %d, head %d, delete %d	\n",
				st.Topic, c.DollarsPerDay, c.RemoteBytes, c.ReadBytes,
				c.Requests[tier.KindPut], c.Requests[tier.KindGet], c.Requests[tier.KindHead], c.Requests[tier.KindDelete])
		}
		fmt.Fprintf(tw, "%s/%d\tremote start %d\tlatest tiered %d\tcopy lag %d segments, %d bytes\t%s\n",
			st.Topic, st.Partition, st.LogStartOffset, st.HighestOffset, st.CopyLagSegments, st.CopyLagBytes, st.LastError)
		for _, r := range st.Remote {
			fmt.Fprintf(tw, "  remote\t%d-%d\t%d bytes\t%s\tupload %s\n", r.BaseOffset, r.EndOffset, r.Size, r.State, r.UploadID)
		}
		for _, l := range st.Local {
			state := "closed"
			switch {
			case l.Active:
				state = "active"
			case l.Uploaded:
				state = "closed, uploaded"
			}
			end := "" // the active segment is open-ended
			if l.NextOffset >= 0 {
				end = strconv.FormatInt(l.NextOffset-1, 10)
			}
			fmt.Fprintf(tw, "  local\t%d-%s\t%d bytes\t%s\t\n", l.BaseOffset, end, l.Size, state)
		}
	}
	tw.Flush()
}
