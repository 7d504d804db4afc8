package bench

import (
	"errors"
	"flag"
	"sort"
	"strings"

	"github.com/stratalog/strata/internal/pricing"
)

// PriceTable is what storage costs. Defaults are AWS list prices (S3
// Standard, gp3) in us-east-1; each is a flag.
type PriceTable struct {
	S3GBMonth     float64 `json:"s3_gb_month"`      // $ per GB-month stored
	S3PerKPut     float64 `json:"s3_per_1000_put"`  // $ per 1,000 PUT, POST, LIST (and COPY) requests
	S3PerKGet     float64 `json:"s3_per_1000_get"`  // $ per 1,000 GET, HEAD (and other) requests
	DiskGBMonth   float64 `json:"disk_gb_month"`    // $ per GB-month of a local disk (gp3)
	DiskReplicas  int     `json:"disk_replication"` // replication factor of the local-disk alternative
	DaysPerMonth  float64 `json:"days_per_month"`
	IngestPerDayG float64 `json:"ingest_gb_per_day"` // for the $ per retention chart
}

// DefaultPrices are AWS S3 Standard (internal/pricing, shared with the
// broker's remote.storage.price.* keys) and gp3 list prices.
func DefaultPrices() PriceTable {
	return PriceTable{S3GBMonth: pricing.S3GBMonth, S3PerKPut: pricing.S3PutPer1000, S3PerKGet: pricing.S3GetPer1000,
		DiskGBMonth: 0.08, DiskReplicas: 3, DaysPerMonth: pricing.DaysPerMonth, IngestPerDayG: 1024}
}

// RegisterFlags binds the prices to fs.
func (p *PriceTable) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&p.S3GBMonth, "price-s3-gb-month", p.S3GBMonth, "$ per GB-month in the object store")
	fs.Float64Var(&p.S3PerKPut, "price-s3-put", p.S3PerKPut, "$ per 1,000 PUT/POST/LIST requests")
	fs.Float64Var(&p.S3PerKGet, "price-s3-get", p.S3PerKGet, "$ per 1,000 GET/HEAD requests")
	fs.Float64Var(&p.DiskGBMonth, "price-disk-gb-month", p.DiskGBMonth, "$ per GB-month of local disk (gp3)")
	fs.IntVar(&p.DiskReplicas, "disk-replication", p.DiskReplicas, "replication factor of the local-disk comparison")
}

// Validate refuses negative prices.
func (p PriceTable) Validate() error {
	if p.S3GBMonth < 0 || p.S3PerKPut < 0 || p.S3PerKGet < 0 || p.DiskGBMonth < 0 || p.DiskReplicas < 1 {
		return errors.New("bench: prices must be >= 0 and disk replication >= 1")
	}
	return nil
}

// putClass reports whether an S3 operation is billed at the PUT rate (PUT,
// COPY, POST, LIST) rather than the GET rate. DELETE is free.
func putClass(op string) (put, free bool) {
	switch {
	case strings.HasPrefix(op, "Delete"), op == "AbortMultipartUpload":
		return false, true
	case strings.HasPrefix(op, "Put"), strings.HasPrefix(op, "List"), strings.HasPrefix(op, "Copy"),
		op == "UploadPart", op == "CreateMultipartUpload", op == "CompleteMultipartUpload":
		return true, false
	}
	return false, false
}

// Cost is the run's object-store bill, and what it means per GB.
type Cost struct {
	// Requests by operation during tiering and cold replay, as the broker counted them (strata_s3_requests_total,
	// or for a file:// store the store operations an S3 store would have sent).
	Requests map[string]int64 `json:"requests"`
	// Checked are the same requests as the object store saw them (the counting
	// proxy in front of MinIO, or the file count of the file:// store).
	Checked     map[string]int64 `json:"checked"`
	CheckSource string           `json:"check_source"`
	CheckOK     bool             `json:"check_ok"`

	ReplayRequests map[string]int64 `json:"replay_requests"`
	// RunRequests are the broker's counts over the whole run, the ones checked.
	RunRequests map[string]int64 `json:"run_requests"`

	// Ingest: requests made while producing and tiering; Replay: while reading back cold.
	IngestPuts, IngestGets int64
	ReplayPuts, ReplayGets int64
	IngestedBytes          int64 `json:"ingested_bytes"` // bytes tiered
	ReplayedBytes          int64 `json:"replayed_bytes"` // bytes served from the remote tier, cold
	StoredBytes            int64 `json:"stored_bytes"`   // objects in the store after the run (.log + .idx)
	LogBytes               int64 `json:"log_bytes"`      // the .log objects alone

	DollarsPerGBIngested  float64 `json:"usd_per_gb_ingested"`
	DollarsPerGBReplayed  float64 `json:"usd_per_gb_replayed"`
	S3DollarsPerTBMonth   float64 `json:"s3_usd_per_tb_month"`   // storage, sidecars included
	DiskDollarsPerTBMonth float64 `json:"disk_usd_per_tb_month"` // gp3 at the replication factor
	Prices                PriceTable
}

const gb = 1 << 30

func (c *Cost) compute(p PriceTable) {
	c.Prices = p
	if c.IngestedBytes > 0 {
		usd := float64(c.IngestPuts)*p.S3PerKPut/1000 + float64(c.IngestGets)*p.S3PerKGet/1000
		c.DollarsPerGBIngested = usd / (float64(c.IngestedBytes) / gb)
	}
	if c.ReplayedBytes > 0 {
		usd := float64(c.ReplayPuts)*p.S3PerKPut/1000 + float64(c.ReplayGets)*p.S3PerKGet/1000
		c.DollarsPerGBReplayed = usd / (float64(c.ReplayedBytes) / gb)
	}
	overhead := 1.0
	if c.LogBytes > 0 && c.StoredBytes > c.LogBytes {
		overhead = float64(c.StoredBytes) / float64(c.LogBytes)
	}
	c.S3DollarsPerTBMonth = 1024 * p.S3GBMonth * overhead
	c.DiskDollarsPerTBMonth = 1024 * p.DiskGBMonth * float64(p.DiskReplicas)
}

// classify splits request counts into PUT-class and GET-class totals.
func classify(reqs map[string]int64) (puts, gets int64) {
	for op, n := range reqs {
		put, free := putClass(op)
		switch {
		case free:
		case put:
			puts += n
		default:
			gets += n
		}
	}
	return puts, gets
}

// RetentionPoint is the monthly cost of keeping a daily ingest for a retention.
type RetentionPoint struct {
	Days       float64 `json:"days"`
	S3Dollars  float64 `json:"s3_usd_month"`
	RF3Dollars float64 `json:"disk_usd_month"`
}

// retentionCurve prices a steady IngestPerDayG per day kept for d days, per
// month: the object store holds d days (storage plus the month's ingest
// requests), the disks hold d days times the replication factor.
func (c *Cost) retentionCurve() []RetentionPoint {
	p := c.Prices
	var pts []RetentionPoint
	for _, d := range []float64{1, 3, 7, 14, 30, 60, 90, 180, 365} {
		gbKept := p.IngestPerDayG * d
		s3 := gbKept*c.S3DollarsPerTBMonth/1024 + p.IngestPerDayG*p.DaysPerMonth*c.DollarsPerGBIngested
		disk := gbKept * p.DiskGBMonth * float64(p.DiskReplicas)
		pts = append(pts, RetentionPoint{Days: d, S3Dollars: s3, RF3Dollars: disk})
	}
	return pts
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
