package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// ProduceResult is one produce case.
type ProduceResult struct {
	Case   ProduceCase `json:"case"`
	Strata Throughput  `json:"strata"`
}

// ManyResult is the scaling workload at one partition count.
type ManyResult struct {
	Partitions int        `json:"partitions"`
	Produce    Throughput `json:"produce"`
	Consume    Throughput `json:"consume"`
}

// TimeToTier is roll to COPY_FINISHED, in seconds.
type TimeToTier struct {
	Segments     uint64  `json:"segments"`
	P50          float64 `json:"p50_s"`
	P99          float64 `json:"p99_s"`
	TaskInterval float64 `json:"task_interval_s"`
	Source       string  `json:"source"`
}

// RemoteFetch is the latency of the tier's remote reads during the cold
// replay (chunk cache empty, read-ahead on), from the tier's histogram.
type RemoteFetch struct {
	Reads  uint64  `json:"reads"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Source string  `json:"source"`
}

// Baselines are the limits measured in the same run.
type Baselines struct {
	RawSink Rate `json:"raw_sink"`
	// RawSendfile sends the files in 1 MiB answers to requests, the rhythm
	// of a fetch; RawSendfileStream as one continuous stream.
	RawSendfile       Rate `json:"raw_sendfile"`
	RawSendfileStream Rate `json:"raw_sendfile_stream"`
	RawGet            Rate `json:"raw_get"`
	RawPut            Rate `json:"raw_put"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemTotal string `json:"mem_total"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

// Figure is one row of the summary table.
type Figure struct {
	Name          string  `json:"name"`
	Unit          string  `json:"unit"`
	Value         float64 `json:"value"`
	Baseline      string  `json:"baseline,omitempty"`
	BaselineValue float64 `json:"baseline_value,omitempty"`
	Ratio         float64 `json:"ratio,omitempty"`
	Target        string  `json:"target,omitempty"`
	Pass          *bool   `json:"pass,omitempty"`
}

// Report is everything one run measured.
type Report struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Mode    string    `json:"mode"`
	Machine Machine   `json:"machine"`
	Config  Config    `json:"config"`

	Figures []Figure `json:"figures"`

	Produce      []ProduceResult `json:"produce"`
	ProduceKfake Throughput      `json:"produce_kfake"`
	// HotConsume and HotConsumeKfakeWire are read by the protocol-level
	// consumer with its reused 1 MiB buffer (set against raw sendfile and
	// against each other), HotConsumeKgoConn by the protocol-level consumer
	// over kgo's connection (32 MiB responses, a new buffer each),
	// HotConsumeDecoded and HotConsumeKfake by the kgo consumer, and
	// HotConsumeDecodedCopy by it from a second broker in this process with
	// strata.sendfile.enable=false.
	HotConsume              Throughput `json:"hot_consume"`
	HotConsumeSendfileBytes int64      `json:"hot_consume_sendfile_bytes"`
	HotConsumeKfakeWire     Throughput `json:"hot_consume_kfake_protocol"`
	HotConsumeKgoConn       Throughput `json:"hot_consume_kgo_conn"`
	HotConsumeDecoded       Throughput `json:"hot_consume_decoded"`
	HotConsumeKfake         Throughput `json:"hot_consume_kfake"`
	HotConsumeDecodedCopy   Throughput `json:"hot_consume_decoded_copy"`
	// Child is the hot consume from a child-process broker, sendfile on
	// then off: the broker CPU per GB comparison.
	Child                  []ChildConsume   `json:"child_broker"`
	ColdCacheEntriesBefore int64            `json:"cold_cache_entries_before"`
	ColdReplay             Throughput       `json:"cold_replay"`
	WarmReplay             Throughput       `json:"warm_replay"`
	WarmCacheHits          int64            `json:"warm_cache_hits"`
	WarmRequests           map[string]int64 `json:"warm_requests"`
	Upload                 Rate             `json:"upload"`
	Latency                Latency          `json:"latency"`
	TimeToTier             TimeToTier       `json:"time_to_tier"`
	RemoteFetch            RemoteFetch      `json:"remote_fetch"`
	Many                   []ManyResult     `json:"many_partitions"`
	Compaction             Compaction       `json:"compaction"`
	Isolation              *Isolation       `json:"isolation,omitempty"`
	Baselines              Baselines        `json:"baselines"`
	CPU                    []CPU            `json:"cpu"`
	Cost                   Cost             `json:"cost"`
	RetentionCurve         []RetentionPoint `json:"retention_curve"`
	Series                 []Series         `json:"series"`
	Skipped                []string         `json:"skipped,omitempty"`
	// Cluster is the cluster benchmark (--cluster), the only result of
	// such a run.
	Cluster *ClusterResult `json:"cluster,omitempty"`
}

func newReport(cfg Config) *Report {
	return &Report{Started: time.Now().UTC(), Config: cfg}
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:")), "%d", &kb)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func (r *Report) cpu(phase string) (CPU, bool) {
	for _, c := range r.CPU {
		if c.Phase == phase {
			return c, true
		}
	}
	return CPU{}, false
}

// childCPUPerGB is the child-process broker's CPU seconds per GB (1e9
// record-batch bytes) served, over every round with sendfile on (or off).
func (r *Report) childCPUPerGB(sendfile bool) float64 {
	var secs float64
	var n int64
	for _, c := range r.Child {
		if c.Sendfile == sendfile {
			secs += c.BrokerSeconds
			n += c.FetchBytes
		}
	}
	if n <= 0 {
		return 0
	}
	return secs / (float64(n) / 1e9)
}

func (r *Report) buildFigures() {
	r.Seconds = time.Since(r.Started).Seconds()
	var fs []Figure
	ratioFig := func(name, unit string, v float64, base string, bv float64, target string, min float64, higherBetter bool) {
		f := Figure{Name: name, Unit: unit, Value: v, Baseline: base, BaselineValue: bv, Target: target}
		if bv > 0 {
			f.Ratio = v / bv
			if target != "" {
				pass := f.Ratio >= min
				if !higherBetter {
					pass = f.Ratio <= min
				}
				f.Pass = &pass
			}
		}
		fs = append(fs, f)
	}
	plain := func(name, unit string, v float64, target string, limit float64) {
		f := Figure{Name: name, Unit: unit, Value: v, Target: target}
		if target != "" {
			pass := v <= limit
			f.Pass = &pass
		}
		fs = append(fs, f)
	}
	if len(r.Produce) > 0 {
		p := r.Produce[0].Strata
		if r.Baselines.RawSink.MBps > 0 {
			ratioFig("produce, log bytes ("+r.Produce[0].Case.String()+")", "MB/s", p.LogMBps, "raw sink", r.Baselines.RawSink.MBps, ">= 0.7", 0.7, true)
		} else {
			plain("produce, payload ("+r.Produce[0].Case.String()+")", "MB/s", p.PayloadMBps, "", 0)
		}
		if r.ProduceKfake.PayloadMBps > 0 {
			ratioFig("produce, payload", "MB/s", p.PayloadMBps, "kfake", r.ProduceKfake.PayloadMBps, "> 1", 1.0000001, true)
		}
		plain("produce, records", "records/s", p.RecordsPerS, "", 0)
		// Compressed cases: payload rate beside the uncompressed headline,
		// and the broker's CPU per GB of payload beside the headline's: the
		// cost of decompressing every batch to validate its records.
		base, baseOK := r.cpu("produce-strata")
		for _, c := range r.Produce[1:] {
			if c.Case.Compression == "" {
				continue
			}
			ratioFig("produce, payload, "+c.Case.Compression+" ("+c.Case.String()+")", "MB/s", c.Strata.PayloadMBps, "uncompressed", p.PayloadMBps, "", 0, true)
			if c.Strata.PayloadBytes > 0 {
				plain("produce, "+c.Case.Compression+", log bytes / payload", "", float64(c.Strata.LogBytes)/float64(c.Strata.PayloadBytes), "", 0)
			}
			// A phase too short for one CPU profile sample has no CPU
			// figure: no ratio rather than a ratio against zero.
			if cc, ok := r.cpu("produce-" + c.Case.Compression); ok && baseOK && base.BrokerSecs > 0 && cc.BrokerSecs > 0 &&
				c.Strata.PayloadBytes > 0 && p.PayloadBytes > 0 {
				ratioFig("produce, "+c.Case.Compression+", broker CPU per GB of payload", "CPU s/GB", cc.BrokerSecs/(float64(c.Strata.PayloadBytes)/1e9),
					"uncompressed", base.BrokerSecs/(float64(p.PayloadBytes)/1e9), "", 0, false)
			}
		}
	}
	if r.Baselines.RawSendfile.MBps > 0 {
		ratioFig("hot consume, log bytes (protocol-level fetch, 1 MiB buffer)", "MB/s", r.HotConsume.LogMBps, "raw sendfile", r.Baselines.RawSendfile.MBps, ">= 0.8", 0.8, true)
		if r.Baselines.RawSendfileStream.MBps > 0 {
			ratioFig("hot consume, log bytes (protocol-level fetch, 1 MiB buffer)", "MB/s", r.HotConsume.LogMBps, "raw sendfile, one stream", r.Baselines.RawSendfileStream.MBps, "", 0, true)
		}
		if r.HotConsumeKgoConn.LogMBps > 0 {
			ratioFig("hot consume, log bytes, protocol-level over kgo's connection (32 MiB responses)", "MB/s", r.HotConsumeKgoConn.LogMBps, "raw sendfile", r.Baselines.RawSendfile.MBps, "", 0, true)
		}
		ratioFig("hot consume, log bytes, decoded by kgo", "MB/s", r.HotConsumeDecoded.LogMBps, "raw sendfile", r.Baselines.RawSendfile.MBps, "", 0, true)
	} else if r.HotConsume.LogMBps > 0 {
		plain("hot consume, log bytes (protocol-level fetch)", "MB/s", r.HotConsume.LogMBps, "", 0)
	}
	if r.HotConsumeKfakeWire.LogMBps > 0 {
		ratioFig("hot consume, log bytes (protocol-level fetch, 1 MiB buffer)", "MB/s", r.HotConsume.LogMBps, "kfake, same consumer", r.HotConsumeKfakeWire.LogMBps, "> 1", 1.0000001, true)
	}
	if r.HotConsumeKfake.PayloadMBps > 0 {
		ratioFig("hot consume, decoded by kgo, payload", "MB/s", r.HotConsumeDecoded.PayloadMBps, "kfake, decoded by kgo", r.HotConsumeKfake.PayloadMBps, "> 1", 1.0000001, true)
		if r.HotConsumeDecodedCopy.PayloadMBps > 0 {
			ratioFig("hot consume, decoded by kgo, payload, sendfile off (copy path)", "MB/s", r.HotConsumeDecodedCopy.PayloadMBps, "kfake, decoded by kgo", r.HotConsumeKfake.PayloadMBps, "", 0, true)
		}
	} else if r.HotConsumeDecoded.PayloadMBps > 0 {
		plain("hot consume, decoded by kgo, payload", "MB/s", r.HotConsumeDecoded.PayloadMBps, "", 0)
	}
	if on, off := r.childCPUPerGB(true), r.childCPUPerGB(false); on > 0 && off > 0 {
		ratioFig("broker CPU per GB served, sendfile (child process)", "CPU s/GB", on, "sendfile off (copy path)", off, "<= 0.5", 0.5, false)
	}
	if r.Baselines.RawGet.MBps > 0 {
		ratioFig("cold replay, remote bytes (cache empty, protocol-level fetch)", "MB/s", r.ColdReplay.LogMBps, fmt.Sprintf("raw GETs x%d", r.Baselines.RawGet.Concurrency), r.Baselines.RawGet.MBps, ">= 0.7", 0.7, true)
		if cold, raw := r.machineCPUPerGB("cold-replay", r.ColdReplay.LogBytes), r.machineCPUPerGB("raw-gets", r.Baselines.RawGet.Bytes); cold > 0 && raw > 0 {
			ratioFig("cold replay, machine CPU per GB (every process, all cores)", "CPU s/GB", cold, fmt.Sprintf("raw GETs x%d", r.Baselines.RawGet.Concurrency), raw, "", 0, false)
		}
		ratioFig("warm replay, remote bytes (cache full, protocol-level fetch)", "MB/s", r.WarmReplay.LogMBps, fmt.Sprintf("raw GETs x%d", r.Baselines.RawGet.Concurrency), r.Baselines.RawGet.MBps, "", 0, true)
	}
	if r.Baselines.RawPut.MBps > 0 {
		ratioFig("upload, one stream", "MB/s", r.Upload.MBps, "raw PUTs x1", r.Baselines.RawPut.MBps, "", 0, true)
	}
	if r.Latency.Records > 0 {
		plain(fmt.Sprintf("e2e latency p50 at %d rec/s", r.Latency.Rate), "ms", r.Latency.P50, "", 0)
		plain("e2e latency p99", "ms", r.Latency.P99, "", 0)
		plain("e2e latency p99.9", "ms", r.Latency.P999, "", 0)
	}
	if r.TimeToTier.Segments > 0 {
		plain(fmt.Sprintf("time to tier p50 (%d segments)", r.TimeToTier.Segments), "s", r.TimeToTier.P50, "", 0)
		plain("time to tier p99", "s", r.TimeToTier.P99, "", 0)
	}
	if r.RemoteFetch.Reads > 0 {
		plain(fmt.Sprintf("remote read latency p50, cold replay (%d reads)", r.RemoteFetch.Reads), "ms", r.RemoteFetch.P50, "", 0)
		plain("remote read latency p99, cold replay", "ms", r.RemoteFetch.P99, "", 0)
	}
	if r.Cost.IngestedBytes > 0 {
		plain("S3 requests per GB ingested", "$/GB", r.Cost.DollarsPerGBIngested, "<= 0.0005", 0.0005)
	}
	if r.Cost.ReplayedBytes > 0 {
		plain("S3 requests per GB replayed", "$/GB", r.Cost.DollarsPerGBReplayed, "<= 0.0002", 0.0002)
	}
	if r.Cost.S3DollarsPerTBMonth > 0 {
		ratioFig("retained, S3", "$/TB-month", r.Cost.S3DollarsPerTBMonth, fmt.Sprintf("local disks RF %d", r.Cost.Prices.DiskReplicas), r.Cost.DiskDollarsPerTBMonth, "", 0, false)
	}
	if c := r.Compaction; c.Cleaner.MBps > 0 && c.Raw.MBps > 0 {
		ratioFig("compaction, cleaner log read", "MB/s", c.Cleaner.MBps, "raw sequential read+write, same disk", c.Raw.MBps, "", 0, true)
	}
	if c := r.Cluster; c != nil {
		fs = append(fs, c.figures()...)
	}
	if iso := r.Isolation; iso != nil {
		fs = append(fs, iso.figures()...)
	}
	for _, m := range r.Many {
		plain(fmt.Sprintf("%d partitions: produce / consume payload", m.Partitions), "MB/s", m.Produce.PayloadMBps, "", 0)
		fs[len(fs)-1].Baseline = "consume"
		fs[len(fs)-1].BaselineValue = m.Consume.PayloadMBps
	}
	r.Figures = fs
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case v == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// Markdown renders the summary table and the detail tables.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("## Strata bench: %s\n\n", r.Mode)
	w("%d CPUs (%s), %s RAM, Linux %s, %s; %.0f s; client, broker and baselines share the machine.\n\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemTotal, r.Machine.Kernel, r.Machine.Go, r.Seconds)
	if r.HotConsume.Client != "" {
		w("Consumers: the rows marked protocol-level fetch, 1 MiB buffer (hot consume against raw sendfile and against kfake, cold and warm replay, the child-process rounds) use the %s, fetch v%d; the rows marked decoded by kgo (against kfake too), the many-partitions consume and the latency run use the %s.\n\n",
			r.HotConsume.Client, r.HotConsume.FetchVersion, clientDecoding)
	}
	w("| figure | value | baseline | baseline value | ratio | target | result |\n|---|---|---|---|---|---|---|\n")
	for _, f := range r.Figures {
		res := ""
		if f.Pass != nil {
			res = "miss"
			if *f.Pass {
				res = "pass"
			}
		}
		bv, ratio := "", ""
		if f.Baseline != "" {
			bv = num(f.BaselineValue) + " " + f.Unit
		}
		if f.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", f.Ratio)
		}
		w("| %s | %s %s | %s | %s | %s | %s | %s |\n", f.Name, num(f.Value), f.Unit, f.Baseline, bv, ratio, f.Target, res)
	}
	if len(r.Produce) > 0 {
		w("\n### Produce cases (Strata)\n\n| case | payload MB/s | log MB/s | records/s |\n|---|---|---|---|\n")
		for _, p := range r.Produce {
			w("| %s | %s | %s | %s |\n", p.Case, num(p.Strata.PayloadMBps), num(p.Strata.LogMBps), num(p.Strata.RecordsPerS))
		}
	}
	if len(r.Many) > 0 {
		w("\n### Many partitions (%s payload each, round robin)\n\n| partitions | produce MB/s | produce records/s | consume MB/s |\n|---|---|---|---|\n", sizeStr(r.Config.ManyBytes))
		for _, m := range r.Many {
			w("| %d | %s | %s | %s |\n", m.Partitions, num(m.Produce.PayloadMBps), num(m.Produce.RecordsPerS), num(m.Consume.PayloadMBps))
		}
	}
	if len(r.Child) > 0 {
		w("\n### Broker CPU per GB: the broker as a child process (utime + stime from /proc/<pid>/stat around the consume phase)\n\n")
		w("| sendfile | round | wall s | MB/s | broker user CPU s | broker system CPU s | broker CPU s/GB | client process CPU s | bytes via sendfile | bytes copied |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range r.Child {
			w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", onOff(c.Sendfile), c.Round, num(c.Consume.Seconds), num(c.Consume.LogMBps), num(c.UserSeconds), num(c.SystemSeconds),
				num(c.CPUPerGB), num(c.ClientSeconds), mib(c.SendfileBytes), mib(c.CopiedBytes))
		}
		w("\nOver all rounds: %s broker CPU s/GB with sendfile, %s with the copy path.\n", num(r.childCPUPerGB(true)), num(r.childCPUPerGB(false)))
	}
	if c := r.Cluster; c != nil {
		b.WriteString(c.markdown())
	}
	if iso := r.Isolation; iso != nil {
		b.WriteString(iso.markdown())
	}
	if c := r.Compaction; c.Cleaner.Bytes > 0 {
		w("\n### Compaction (localstore's cleaner, no broker)\n\n")
		w("A %s log of %d records over %d keys in %d closed segments: the cleaner read %s in %s s (%d pass(es)), wrote %s in %d segments and removed %d records; %s MB/s of bytes read. Raw: %s read and written in %s s, %s MB/s (%s).\n",
			mib(c.LogBytes), c.Records, c.Keys, c.Segments, mib(c.Cleaner.Bytes), num(c.Cleaner.Seconds), c.Passes, mib(c.CleanerWritten), c.SegmentsAfter,
			c.RecordsRemoved, num(c.Cleaner.MBps), mib(c.Raw.Bytes), num(c.Raw.Seconds), num(c.Raw.MBps), c.Raw.How)
	}
	if len(r.CPU) > 0 {
		w("\n### CPU by phase (process CPU from getrusage, split by pprof labels; MinIO's from /proc/<pid>/stat; the machine's from /proc/stat, all cores)\n\n| phase | wall s | process CPU s | broker CPU s | client CPU s | MinIO CPU s | machine busy |\n|---|---|---|---|---|---|---|\n")
		for _, c := range r.CPU {
			store := "-"
			if c.StoreSecs > 0 {
				store = num(c.StoreSecs)
			}
			w("| %s | %s | %s | %s | %s | %s | %.0f%% |\n", c.Phase, num(c.WallSeconds), num(c.ProcessSecs), num(c.BrokerSecs), num(c.ClientSecs), store, 100*c.MachineBusy)
		}
	}
	if len(r.Cost.Requests) > 0 {
		w("\n### Object-store requests\n\n| operation | tiering the cold topic | cold replay | whole run, broker's count | whole run, store's count |\n|---|---|---|---|---|\n")
		ops := map[string]int64{}
		for _, m := range []map[string]int64{r.Cost.Requests, r.Cost.RunRequests, r.Cost.Checked} {
			for k := range m {
				ops[k] = 1
			}
		}
		for _, k := range sortedKeys(ops) {
			w("| %s | %d | %d | %d | %d |\n", k, r.Cost.Requests[k]-r.Cost.ReplayRequests[k], r.Cost.ReplayRequests[k], r.Cost.RunRequests[k], r.Cost.Checked[k])
		}
		w("\nCheck: %s: %v. Ingested %s in %d PUT-class and %d GET-class requests; replayed %s in %d GET-class requests; %s stored (%s of segments). Prices: $%g/GB-month, $%g per 1,000 PUTs, $%g per 1,000 GETs; disks $%g/GB-month at RF %d.\n",
			r.Cost.CheckSource, r.Cost.CheckOK, mib(r.Cost.IngestedBytes), r.Cost.IngestPuts, r.Cost.IngestGets,
			mib(r.Cost.ReplayedBytes), r.Cost.ReplayGets, mib(r.Cost.StoredBytes), mib(r.Cost.LogBytes),
			r.Cost.Prices.S3GBMonth, r.Cost.Prices.S3PerKPut, r.Cost.Prices.S3PerKGet, r.Cost.Prices.DiskGBMonth, r.Cost.Prices.DiskReplicas)
	}
	for _, s := range r.Skipped {
		w("\nSkipped: %s\n", s)
	}
	return b.String()
}

// machineCPUPerGB is the machine's CPU seconds over every round of a phase
// (phase, phase-2, ...) per GB of bytes; 0 if none was measured.
func (r *Report) machineCPUPerGB(phase string, bytes int64) float64 {
	var secs float64
	for _, c := range r.CPU {
		if c.Phase == phase || strings.HasPrefix(c.Phase, phase+"-") && strings.Trim(c.Phase[len(phase)+1:], "0123456789") == "" {
			secs += c.MachineSecs
		}
	}
	if secs <= 0 || bytes <= 0 {
		return 0
	}
	return secs / (float64(bytes) / 1e9)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// WriteFiles writes report.json, report.md and the SVG charts into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"report.json":        j,
		"report.md":          []byte(r.Markdown()),
		"throughput.svg":     []byte(r.throughputChart()),
		"latency-cdf.svg":    []byte(r.latencyChart()),
		"cost-retention.svg": []byte(r.costChart()),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
