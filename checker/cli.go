package checker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Usage is the help of `strata check`.
const Usage = `strata check: a history checker for a topic under faults

  strata check produce --brokers H:P[,H:P] --topic T [--producers 3] [--duration 30s]
                       [--rate 0] [--name p] [--partitions N [--replication-factor R]] --out FILE
  strata check consume --brokers .. --topic T --group G [--duration 30s] --out FILE
  strata check read    --brokers .. --topic T [--timeout 2m] --out FILE
  strata check analyze FILE...        exit status 1 when anything acknowledged is lost,
                                      duplicated, divergent or out of order
  strata check ping    --brokers ..   ApiVersions to every broker; exit status 1 if one fails

Histories are JSON lines, one file per workload process, so workloads run in
separate processes (or network namespaces) combine in analyze.
`

// ErrAnomalies is what analyze returns when the report is not clean.
var ErrAnomalies = errors.New("checker: anomalies found")

// Command runs `strata check ARGS...`.
func Command(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return errors.New("check: no subcommand given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("check "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "comma-separated bootstrap brokers host:port")
	topic := fs.String("topic", "", "the topic")
	out := fs.String("out", "", "the history file to write")
	var c Client
	client := func() (Client, error) {
		c = Client{Topic: *topic}
		for _, b := range strings.Split(*brokers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.Brokers = append(c.Brokers, b)
			}
		}
		if len(c.Brokers) == 0 {
			return c, errors.New("check " + sub + ": --brokers is required")
		}
		return c, nil
	}
	write := func(h History, err error) error {
		if *out == "" {
			return errors.New("check " + sub + ": --out is required")
		}
		if err != nil && len(h) == 0 {
			return err // nothing ran: leave no empty history behind
		}
		if werr := WriteHistoryFile(*out, h); werr != nil {
			return werr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d events written to %s\n", sub, len(h), *out)
		return nil
	}
	parse := func() error {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 && sub != "analyze" {
			return fmt.Errorf("check %s: unexpected argument %q", sub, fs.Arg(0))
		}
		return nil
	}
	// workload parses, then checks the client and --out, for the
	// subcommands that write a history.
	workload := func() (Client, error) {
		if err := parse(); err != nil {
			return Client{}, err
		}
		c, err := client()
		if err != nil {
			return c, err
		}
		if *out == "" {
			return c, errors.New("check " + sub + ": --out is required")
		}
		return c, nil
	}
	switch sub {
	case "produce":
		producers := fs.Int("producers", 3, "concurrent idempotent producers")
		duration := fs.Duration("duration", 30*time.Second, "how long to produce")
		rate := fs.Int("rate", 0, "records per second per producer (0: as fast as acknowledged)")
		name := fs.String("name", "p", "producer name prefix, unique per produce process")
		partitions := fs.Int("partitions", 0, "create the topic with this many partitions first (0: do not create)")
		rf := fs.Int("replication-factor", -1, "with --partitions: the replication factor (-1: the broker's default)")
		delivery := fs.Duration("delivery-timeout", 30*time.Second, "how long one record may be retried")
		c, err := workload()
		if err != nil {
			return err
		}
		if *partitions > 0 {
			if *partitions > 1<<20 || *rf > 32767 {
				return errors.New("check produce: --partitions or --replication-factor out of range")
			}
			if err := CreateTopic(ctx, c, int32(*partitions), int16(*rf)); err != nil {
				return err
			}
		}
		return write(Produce(ctx, ProduceConfig{Client: c, Producers: *producers, Duration: *duration,
			Rate: *rate, Name: *name, DeliveryTimeout: *delivery}))
	case "consume":
		group := fs.String("group", "", "the consumer group")
		duration := fs.Duration("duration", 30*time.Second, "how long to consume")
		c, err := workload()
		if err != nil {
			return err
		}
		return write(Consume(ctx, ConsumeConfig{Client: c, Group: *group, Duration: *duration}))
	case "read":
		timeout := fs.Duration("timeout", 2*time.Minute, "bound on the whole read")
		c, err := workload()
		if err != nil {
			return err
		}
		return write(FinalRead(ctx, ReadConfig{Client: c, Timeout: *timeout}))
	case "ping":
		timeout := fs.Duration("timeout", 5*time.Second, "bound on each broker's answer")
		if err := parse(); err != nil {
			return err
		}
		*topic = "-"
		c, err := client()
		if err != nil {
			return err
		}
		var errs []error
		for _, b := range c.Brokers {
			pctx, cancel := context.WithTimeout(ctx, *timeout)
			err := Ping(pctx, b, nil)
			cancel()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "%s: ok\n", b)
		}
		return errors.Join(errs...)
	case "analyze":
		if err := parse(); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			return errors.New("check analyze: no history files given")
		}
		var hs []History
		for _, f := range fs.Args() {
			h, err := ReadHistoryFile(f)
			if err != nil {
				return err
			}
			hs = append(hs, h)
		}
		r := Analyze(hs...)
		fmt.Fprint(stdout, r.String())
		if !r.OK() {
			return ErrAnomalies
		}
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, Usage)
		return nil
	}
	fmt.Fprint(stderr, Usage)
	return fmt.Errorf("check: unknown subcommand %q", sub)
}
