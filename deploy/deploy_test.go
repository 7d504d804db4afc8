// Package deploy holds the container set-up (docker-compose.yml at the
// repository root, the Dockerfile, Prometheus and Grafana provisioning) and
// `make dev`'s launcher (deploy/dev). No Docker engine is needed to test it:
// the files are parsed and the dashboard's metric names are checked against
// the metrics the code really registers.
package deploy

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/stratalog/strata/broker"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore/backend"
	"github.com/stratalog/strata/remotestore/s3"
	"github.com/stratalog/strata/tier"
)

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestComposeFile(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       map[string]string `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			DependsOn   any               `yaml:"depends_on"`
		} `yaml:"services"`
	}
	readYAML(t, "../docker-compose.yml", &compose)
	for _, name := range []string{"minio", "minio-init", "strata", "prometheus", "grafana"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("docker-compose.yml has no service %q", name)
		}
	}
	st := compose.Services["strata"]
	if st.Build["dockerfile"] == "" {
		t.Fatal("strata service is not built from a Dockerfile")
	}
	if _, err := os.Stat(filepath.Join("..", st.Build["context"], st.Build["dockerfile"])); err != nil {
		t.Errorf("strata Dockerfile: %v", err)
	}
	url := st.Environment["STRATA_REMOTE_STORAGE_URL"]
	if loc, err := backend.ParseURL(url); err != nil || loc.Scheme != "s3" || loc.S3.Endpoint != "http://minio:9000" || loc.S3.Bucket != "strata" {
		t.Errorf("strata tiers to %q (%+v, %v), want the minio service's bucket strata", url, loc, err)
	}
	if strings.Contains(url, "secret") || st.Environment["AWS_SECRET_ACCESS_KEY"] == "" {
		t.Errorf("the store's secret should come by the AWS chain, not in the URL %q", url)
	}
	if !strings.Contains(strings.Join(compose.Services["minio-init"].Volumes, " ")+compose.Services["minio-init"].Image, "mc") {
		t.Error("minio-init does not use mc")
	}
	// Every host file the services mount exists.
	for name, s := range compose.Services {
		for _, v := range s.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	// Prometheus scrapes strata where metrics.listen puts them.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus.yml", &prom)
	_, port, _ := strings.Cut(st.Environment["STRATA_METRICS_LISTEN"], ":")
	found := false
	for _, sc := range prom.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			for _, tg := range s.Targets {
				found = found || tg == "strata:"+port
			}
		}
	}
	if port == "" || !found {
		t.Errorf("prometheus.yml does not scrape strata:%s", port)
	}
	var ds struct {
		Datasources []struct{ Type, URL, UID string } `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana datasource %+v", ds.Datasources)
	}
	var dp struct {
		Providers []struct {
			Options struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/strata.yml", &dp)
	if len(dp.Providers) != 1 || !strings.Contains(strings.Join(compose.Services["grafana"].Volumes, " "), ":"+dp.Providers[0].Options.Path) {
		t.Errorf("grafana dashboard provider path %+v is not mounted", dp.Providers)
	}
}

// recorder is a Registerer that keeps the names of every metric registered.
type recorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// registeredNames are the metrics a broker with an s3 tier registers, from
// the real constructors.
func registeredNames(t *testing.T) map[string]bool {
	rec := &recorder{names: map[string]bool{}}
	broker.NewMetrics(rec)
	s3.NewRequestMetrics(rec)
	store, err := backend.Open(context.Background(), "mem://", backend.Options{Registerer: rec})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	mgr, err := tier.New(tier.Config{CacheDir: t.TempDir(), ReconcileInterval: -1}, store, meta, slog.New(slog.DiscardHandler), rec)
	if err != nil {
		t.Fatal(err)
	}
	mgr.Close()
	return rec.names
}

func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/dashboards/strata-tier.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	names := registeredNames(t)
	metric := regexp.MustCompile(`\bstrata_[a-z0-9_]+`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if s := strings.TrimSuffix(m, suf); s != m && names[s] {
						base = s
					}
				}
				if !names[base] {
					t.Errorf("panel %q uses %s, which no code registers", p.Title, m)
				}
				used[base] = true
			}
		}
	}
	// The panels: copy lag, remote fetch latency, cache hit rate, S3 requests, $ per day.
	for _, want := range []string{"strata_tier_copy_lag_bytes", "strata_tier_remote_fetch_seconds", "strata_remote_cache_hits_total", "strata_remote_cache_misses_total", "strata_s3_requests_total", "strata_tier_remote_log_bytes"} {
		if !used[want] {
			t.Errorf("dashboard does not show %s", want)
		}
	}
	if testing.Verbose() {
		var ks []string
		for k := range used {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		t.Logf("dashboard metrics: %v", ks)
	}
}
