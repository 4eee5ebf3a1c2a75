package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/server"
)

// shutdownGrace is how long in-flight requests get to finish on SIGTERM.
const shutdownGrace = 20 * time.Second

func newServeCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run keygate: one gateway listener per API and the admin listener",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			logger := g.logger(cfg)
			srv, err := server.New(cmd.Context(), cfg, server.Options{Logger: logger})
			if err != nil {
				return err
			}
			if err := srv.Start(); err != nil {
				_ = srv.Shutdown(context.Background())
				return err
			}
			<-cmd.Context().Done()
			logger.Info("shutting down; finishing in-flight requests")
			ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			return srv.Shutdown(ctx)
		},
	}
}

func newMigrateCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the database schema, then exit",
		Args:  cobra.NoArgs,
		// Opening the store applies the migrations.
		RunE: g.withStore(func(cmd *cobra.Command, _ []string, _ *config.Config, _ keygate.Store) error {
			cmd.Println("database schema is up to date")
			return nil
		}),
	}
}
