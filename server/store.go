package server

import (
	"context"
	"fmt"
	"os"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/sqlite"
)

// OpenStore opens the configured store: PostgreSQL when database_url is
// set, else SQLite in data_dir (created if missing). Migrations run.
func OpenStore(ctx context.Context, cfg *config.Config) (keygate.Store, error) {
	if cfg.DatabaseURL != "" {
		return nil, fmt.Errorf("database_url: PostgreSQL support is not built into this keygate")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	return sqlite.Open(ctx, cfg.DatabasePath())
}
