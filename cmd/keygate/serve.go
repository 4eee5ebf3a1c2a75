package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/server"
)

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
			if len(cfg.APIs()) == 0 {
				return errNoAPIs(g, cfg)
			}
			logger := g.logger(cfg)
			srv, err := server.New(cmd.Context(), cfg, server.Options{Logger: logger, Version: readBuildInfo().Version})
			if err != nil {
				return err
			}
			if err := srv.Start(); err != nil {
				_ = srv.Shutdown(context.Background())
				return err
			}
			<-cmd.Context().Done()
			logger.Info("shutting down; finishing in-flight requests")
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Listeners.ShutdownGrace)
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

// errNoAPIs refuses to serve a config with nothing to guard, which is what
// --data-dir without a keygate.yaml gives, and says how to get one.
func errNoAPIs(g *globals, cfg *config.Config) error {
	where := "the config " + cfg.File
	if g.configFile == "" && g.dataDir != "" && cfg.File == dataDirConfigName {
		where = "--data-dir " + g.dataDir + ", which holds no keygate.yaml,"
	}
	return fmt.Errorf("no APIs are configured in %s, so there is nothing to serve.\n"+
		"Write a config for your API with:\n"+
		"  keygate init --dir DIR --api NAME --preset cannmenus|canskan|custom --upstream URL\n"+
		"then run keygate serve --config DIR/keygate.yaml. To look around first, run keygate demo. "+
		"Every setting: docs/configuration.md", where)
}
