// Command strata-bench is Strata's benchmark (package bench, docs/benchmarks.md).
// `strata bench ARGS` runs it: strata looks for strata-bench next to its own
// executable, then on PATH, and passes --strata-binary=ITSELF before ARGS.
// `make build` builds both binaries.
//
//	strata-bench [--quick] [--s3] [--out DIR] [--brokers host:port,...] [flags]
//
// It is a binary of its own so that the broker does not link the benchmark's
// peer (kfake) or its MinIO harness.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/stratalog/strata/bench"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "strata bench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "strata bench:", err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit status 2, as flag's).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func run(args []string, stdout, stderr io.Writer) error {
	quick := false
	for _, a := range args {
		if a == "--quick" || a == "-quick" || a == "--quick=true" || a == "-quick=true" {
			quick = true
		}
	}
	cfg := bench.Defaults()
	if quick {
		cfg = bench.Quick()
	}
	cfg.StrataBinary = findStrata()
	fs := flag.NewFlagSet("strata bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool("quick", false, "the small run (under three minutes on two cores); other flags apply on top")
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q: strata bench takes flags only", fs.Args())}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg, stderr)
	if rep != nil && cfg.Out != "" {
		if werr := rep.WriteFiles(cfg.Out); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.Markdown())
	if cfg.Out != "" {
		fmt.Fprintf(stdout, "\nreport.json, report.md, charts and CPU profiles in %s\n", cfg.Out)
	}
	return nil
}

// findStrata is the default of --strata-binary, the broker run as a child
// process for the CPU per GB with sendfile on and off: strata next to this
// executable, else strata on PATH, else none (that comparison is then
// skipped with a note). `strata bench` passes its own path instead.
func findStrata() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "strata")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("strata"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	return ""
}
