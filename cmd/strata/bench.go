package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/stratalog/strata/bench"
)

// benchCommand is `strata bench`: see package bench and docs/benchmarks.md.
func benchCommand(args []string, stdout, stderr io.Writer) error {
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
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Bool("quick", false, "the small run (under three minutes on two cores); other flags apply on top")
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench takes no arguments (got %q)", fs.Args())
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
