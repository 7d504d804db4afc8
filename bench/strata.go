package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stratalog/strata/broker"
	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/wire"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/tier"
)

// strata is a broker in this process. Every goroutine it starts carries the
// pprof label side=broker (see cpu.go).
type strata struct {
	srv  *broker.Server
	mgr  *tier.Manager
	meta *metadata.Store
	reg  *prometheus.Registry
	addr string
	errc chan error
	sets []string

	stopOnce sync.Once
	stopErr  error
}

// startStrata opens a broker on dir with the harness's settings plus extra,
// serving on a free loopback port.
func startStrata(dir, storeURL string, cfg *Config, extra ...string) (*strata, error) {
	sets := []string{
		"listeners=PLAINTEXT://127.0.0.1:0",
		"log.dir=" + filepath.Join(dir, "log"),
		"remote.storage.url=" + storeURL,
		"remote.cache.dir=" + filepath.Join(dir, "cache"),
		"remote.cache.max.bytes=" + strconv.FormatInt(max(2*cfg.ColdBytes, 2*cfg.ChunkBytes), 10),
		"remote.chunk.bytes=" + strconv.FormatInt(cfg.ChunkBytes, 10),
		"remote.readahead.chunks=" + strconv.Itoa(cfg.Readahead),
		"remote.log.manager.task.interval.ms=" + strconv.FormatInt(cfg.TaskInterval.Milliseconds(), 10),
		"remote.fetch.max.wait.ms=5000",
		"log.retention.check.interval.ms=1000",
		"group.initial.rebalance.delay.ms=0",
		"message.max.bytes=16777216",
	}
	sets = append(sets, extra...)
	bcfg, err := config.Load("", nil, sets)
	if err != nil {
		return nil, err
	}
	s := &strata{reg: prometheus.NewRegistry(), errc: make(chan error, 1), sets: sets}
	var startErr error
	pprof.Do(context.Background(), pprof.Labels("side", "broker"), func(context.Context) {
		if s.meta, startErr = wire.Meta(bcfg); startErr != nil {
			return
		}
		var closeTier func() error
		if s.mgr, closeTier, startErr = wire.Tier(bcfg, s.meta, nil, s.reg); startErr != nil {
			s.meta.Close()
			return
		}
		s.srv, startErr = broker.New(bcfg, broker.Options{Logger: slog.New(slog.DiscardHandler), Registerer: s.reg,
			Meta: s.meta, Tier: s.mgr, Closers: []func() error{closeTier}})
		if startErr != nil {
			closeTier()
			s.meta.Close()
			return
		}
		var l net.Listener
		l, startErr = net.Listen("tcp", "127.0.0.1:0")
		if startErr != nil {
			s.srv.Close()
			s.meta.Close()
			return
		}
		s.addr = l.Addr().String()
		go func() { s.errc <- s.srv.Serve(l) }()
	})
	if startErr != nil {
		return nil, fmt.Errorf("bench: start strata: %w", startErr)
	}
	return s, nil
}

// stop shuts the broker down; later calls return the first one's error.
func (s *strata) stop() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if err == broker.ErrServerClosed {
			err = nil
		}
		<-s.errc
		if cerr := s.meta.Close(); err == nil {
			err = cerr
		}
		s.stopErr = err
	})
	return s.stopErr
}

// counter sums a counter (or a counter vector) in the registry.
func (s *strata) counter(name string) float64 {
	return sumMetric(s.reg, name, nil)
}

// byLabel sums a counter vector by the value of label.
func (s *strata) byLabel(name, label string) map[string]int64 {
	out := map[string]int64{}
	mfs, _ := s.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] += int64(metricValue(m))
				}
			}
		}
	}
	return out
}

// histogram returns the cumulative buckets of a histogram metric.
func (s *strata) histogram(name string) (bounds []float64, counts []uint64, total uint64) {
	mfs, _ := s.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			for _, b := range h.GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
				counts = append(counts, b.GetCumulativeCount())
			}
			total = h.GetSampleCount()
		}
	}
	return bounds, counts, total
}

func sumMetric(g prometheus.Gatherer, name string, match map[string]string) float64 {
	mfs, _ := g.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k, v := range match {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			sum += metricValue(m)
		}
	}
	return sum
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// histQuantile interpolates quantile q inside cumulative histogram buckets,
// as Prometheus's histogram_quantile does.
func histQuantile(q float64, bounds []float64, counts []uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * float64(total)
	prevB, prevC := 0.0, 0.0
	for i, b := range bounds {
		c := float64(counts[i])
		if c >= rank {
			if c == prevC {
				return b
			}
			return prevB + (b-prevB)*(rank-prevC)/(c-prevC)
		}
		prevB, prevC = b, c
	}
	return bounds[len(bounds)-1] // in the +Inf bucket: the highest finite bound
}

// startKfake starts franz-go's in-memory broker, labelled side=broker.
func startKfake() (*kfake.Cluster, string, error) {
	var (
		c   *kfake.Cluster
		err error
	)
	pprof.Do(context.Background(), pprof.Labels("side", "broker"), func(context.Context) {
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "16777216"}))
	})
	if err != nil {
		return nil, "", fmt.Errorf("bench: start kfake: %w", err)
	}
	return c, c.ListenAddrs()[0], nil
}
