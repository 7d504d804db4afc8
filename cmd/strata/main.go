// Command strata is the Strata broker and its tools.
//
//	strata serve [--config server.properties] [--set key=value ...]
//	strata tier ls|recover|reconcile
//	strata segments dump FILE
//	strata bench [flags]    (runs the strata-bench binary: cmd/strata-bench)
//	strata check produce|consume|read|analyze|ping   (the history checker: package checker)
//	strata version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratalog/strata/broker"
	"github.com/stratalog/strata/checker"
	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/wire"
	"github.com/stratalog/strata/localstore"
)

const usage = `strata: a Kafka-compatible broker with tiered storage

Usage:
  strata serve [--config FILE] [--set key=value]...   start the broker
  strata tier ls [TOPIC] [--config FILE] [--set k=v]  local and remote segments per partition, with copy lag
  strata tier recover [--config FILE] [--set k=v]     rebuild the remote index (meta.db) from the bucket alone
  strata tier reconcile [--dry-run] [--grace DUR] ... list, and delete, objects no index entry owns
  strata segments dump FILE                            print a segment's batches and index entries
  strata bench [--quick] [--s3] [--out DIR] ...        the benchmark: runs strata-bench (next to strata, else on
                                                       PATH; make build builds both), docs/benchmarks.md
  strata check produce|consume|read ... --out FILE     the history checker's workloads (acks=all idempotent
                                                       producers, a consumer group, a final read), histories
                                                       as JSON lines; strata check help
  strata check analyze FILE...                         lost, duplicated, divergent, out-of-order records;
                                                       exit status 1 when any
  strata version

Configuration keys are Kafka's (see config/doc.go); each may also come from an
environment variable STRATA_<KEY> with dots as underscores (STRATA_LOG_DIRS).
`

// version is set at link time by release builds.
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var es *exitStatus
		if errors.As(err, &es) { // strata-bench said why itself
			os.Exit(es.code)
		}
		fmt.Fprintln(os.Stderr, "strata:", err)
		os.Exit(1)
	}
}

// multiFlag collects repeated --set flags.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "tier":
		return tierCommand(args[1:], stdout, stderr)
	case "bench":
		return benchCommand(args[1:], stdout, stderr)
	case "check":
		return checker.Command(args[1:], stdout, stderr)
	case "segments":
		if len(args) != 3 || args[1] != "dump" {
			return errors.New("usage: strata segments dump FILE")
		}
		return localstore.DumpSegment(stdout, args[2])
	case "version":
		fmt.Fprintln(stdout, "strata", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "Kafka-style properties file")
	var sets multiFlag
	fs.Var(&sets, "set", "key=value, overriding the file and the environment (repeatable)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments (got %q); use --set key=value", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := config.Load(*cfgPath, os.Environ(), sets)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The composition root: the metadata store, the object store and the
	// tier over them, then the broker, which sees the tier as an interface.
	meta, err := wire.Meta(cfg)
	if err != nil {
		return err
	}
	defer meta.Close() // after the broker and the tier stopped
	mgr, closeTier, err := wire.Tier(cfg, meta, logger, reg)
	if err != nil {
		return err
	}
	srv, err := broker.New(cfg, broker.Options{Logger: logger, Registerer: reg, Meta: meta, Tier: mgr, Closers: []func() error{closeTier}})
	if err != nil {
		closeTier()
		return err
	}
	if cfg.MetricsListen != "" {
		ml, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("metrics.listen: cannot listen on %s: %w", cfg.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/v1/tier", tierStatusHandler(srv, mgr))
		mux.HandleFunc("/v1/tier/deletions", deletionsHandler(srv))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
		logger.Info("metrics", "addr", ml.Addr().String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, broker.ErrServerClosed) {
		return err
	}
	return nil
}
