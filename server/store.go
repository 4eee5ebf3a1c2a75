package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/postgres"
	"github.com/keygate/keygate/sqlite"
)

// OpenStore opens the configured store: PostgreSQL when database_url is
// set, else SQLite in data_dir (created if missing). Migrations run.
func OpenStore(ctx context.Context, cfg *config.Config) (keygate.Store, error) {
	return openStore(ctx, cfg, slog.Default())
}

// openStore is OpenStore with the logger for what the store's change feed
// retries through.
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (keygate.Store, error) {
	if cfg.DatabaseURL != "" {
		// The URL may hold a password: errors from Open never include it.
		store, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.WithLogger(logger),
			postgres.WithReplicas(cfg.DatabaseReplicaURLs...))
		if err != nil {
			return nil, err // not a nil *postgres.Store in a non-nil interface
		}
		return store, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	store, err := sqlite.Open(ctx, cfg.DatabasePath(), sqlite.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return store, nil
}
