// Package wire builds the parts of a Strata node that the broker only sees
// through interfaces: the object store (remotestore/backend) and the tiering
// manager over it. cmd/strata, the benchmark and the broker's tests call it;
// the broker imports neither the tier's implementation nor the backends.
package wire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/pricing"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/backend"
	"github.com/stratalog/strata/tier"
)

// openTimeout bounds opening the object store.
const openTimeout = 30 * time.Second

// Tier opens remote.storage.url and the tiering manager over it, sharing the
// node's metadata store. close closes the manager, then the store; call it
// after the broker has stopped. logger and reg may be nil.
func Tier(cfg *config.Broker, meta *metadata.Store, logger *slog.Logger, reg prometheus.Registerer) (mgr *tier.Manager, close func() error, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	health := remotestore.NewHealth(backend.Redact(cfg.RemoteStorageURL))
	store, err := backend.Open(ctx, cfg.RemoteStorageURL, backend.Options{
		Registerer: reg,
		Timeouts: remotestore.Timeouts{
			Request: ms(cfg.RemoteStorageRequestTimeoutMs),
			Stall:   ms(cfg.RemoteStorageStallTimeoutMs),
		},
		Health: health,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("remote.storage.url: %w", err)
	}
	closeStore := func() error {
		if c, ok := store.(io.Closer); ok {
			return c.Close()
		}
		return nil
	}
	mgr, err = tier.New(tier.Config{
		CacheDir:                 cfg.RemoteCacheDir,
		CacheMaxBytes:            cfg.RemoteCacheMaxBytes,
		CachePolicy:              cfg.RemoteCachePolicy,
		ChunkBytes:               cfg.RemoteChunkBytes,
		ReadaheadChunks:          int(cfg.RemoteReadaheadChunks),
		ReaderThreads:            int(cfg.RemoteLogReaderThreads),
		CopyMaxBytesPerSecond:    cfg.RemoteLogManagerCopyMaxBytesPerSec,
		CompactMaxBytesPerSecond: cfg.RemoteLogCompactionMaxBytesPerSec,
		CompactDedupeBufferBytes: cfg.LogCleanerDedupeBufferSize,
		FetchMaxBytesPerSecond:   cfg.RemoteLogManagerFetchMaxBytesPerSec,
		ReaderMaxPendingTasks:    int(cfg.RemoteLogReaderMaxPendingTasks),
		Prices: &pricing.S3{GBMonth: cfg.RemoteStoragePriceGBMonth,
			PutPer1000: cfg.RemoteStoragePricePutPer1000, GetPer1000: cfg.RemoteStoragePriceGetPer1000},
		FetchMaxWait: ms(cfg.RemoteFetchMaxWaitMs),
		OrphanGrace:  ms(cfg.RemoteOrphanGraceMs),
		Health:       health,
		Replicated:   cfg.ClusterMode(),
	}, store, meta, logger.With("component", "tier"), reg)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	logger.Info("remote tier", "url", backend.Redact(cfg.RemoteStorageURL))
	return mgr, func() error {
		err := mgr.Close()
		if cerr := closeStore(); err == nil {
			err = cerr
		}
		return err
	}, nil
}

// Meta creates the log directory if needed and opens the node's metadata
// store in it (<log.dirs>/meta.db).
func Meta(cfg *config.Broker) (*metadata.Store, error) {
	if err := os.MkdirAll(cfg.LogDir(), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create log dir %q: %w", cfg.LogDir(), err)
	}
	return metadata.Open(filepath.Join(cfg.LogDir(), "meta.db"))
}
