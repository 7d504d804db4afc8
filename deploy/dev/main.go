// Command dev is `make dev`: MinIO on loopback with a bucket, and strata serve
// tiering to it, without containers.
//
//	go run ./deploy/dev [--dir .dev] [--strata ./strata] [-- extra strata serve flags]
//
// MinIO's data and log go to DIR/minio, Strata's to DIR/strata; Ctrl-C stops both.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stratalog/strata/internal/minioserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", ".dev", "data directory of MinIO and Strata")
	bin := flag.String("strata", "./strata", "the strata binary")
	port := flag.Int("minio-port", 9000, "MinIO's S3 port on 127.0.0.1 (0: any free port)")
	flag.Parse()
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	mio, err := minioserver.Launch(filepath.Join(abs, "minio"), minioserver.Options{Port: *port})
	if err != nil {
		return err
	}
	defer mio.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = mio.CreateBucket(ctx, "strata")
	cancel()
	if err != nil && !isExists(err) {
		return err
	}
	url := fmt.Sprintf("s3://strata/dev?endpoint=%s&region=%s", mio.Endpoint, minioserver.Region)
	fmt.Fprintf(os.Stderr, "dev: MinIO at %s (user %s, password %s), bucket strata, log %s\n", mio.Endpoint, mio.AccessKey, mio.SecretKey, mio.LogPath)

	args := append([]string{"serve",
		"--set", "log.dirs=" + filepath.Join(abs, "strata"),
		"--set", "remote.storage.url=" + url,
		"--set", "metrics.listen=127.0.0.1:9464",
		"--set", "remote.log.manager.task.interval.ms=5000",
	}, flag.Args()...)
	cmd := exec.Command(*bin, args...)
	// The credentials by the AWS chain, so they are not in the URL or in ps.
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+mio.AccessKey, "AWS_SECRET_ACCESS_KEY="+mio.SecretKey)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "dev: strata on 127.0.0.1:9092, metrics on http://127.0.0.1:9464/metrics; Ctrl-C stops both")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-sig:
		cmd.Process.Signal(syscall.SIGTERM)
		<-done // strata's own exit status is that of the signal: not an error here
		return nil
	}
}

// isExists reports a bucket that is already there (a second `make dev`).
func isExists(err error) bool {
	s := err.Error()
	for _, w := range []string{"BucketAlreadyOwnedByYou", "already own it", "BucketAlreadyExists"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
