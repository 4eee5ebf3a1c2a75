package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/config"
)

// healthcheckTimeout bounds `keygate healthcheck`: container engines run it
// every few seconds and count a hang as a failure anyway.
const healthcheckTimeout = 3 * time.Second

func newHealthcheckCommand(g *globals) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the local keygate's /healthz answers 200 (for container HEALTHCHECKs)",
		Long: `healthcheck asks the admin listener of the keygate described by the config
for /healthz and exits 0 on 200, 1 otherwise. Images built FROM scratch have
no curl; this is their HEALTHCHECK. --url asks another address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				cfg, err := g.loadConfig()
				if err != nil {
					return err
				}
				url = "http://" + dialableAddress(cfg.Admin.Listen) + "/healthz"
			}
			if err := checkHealth(cmd.Context(), url); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "URL to ask instead of the config's admin listener (…/healthz)")
	return cmd
}

func checkHealth(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health check URL: %w", err)
	}
	res, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: %s answered %d", url, res.StatusCode)
	}
	return nil
}

// dialableAddress turns a listen address into one to connect to: a
// wildcard host (0.0.0.0, ::, empty) becomes loopback.
func dialableAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func newConfigCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check keygate's configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Read and check the config without opening the database; exit 1 on any problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			printConfigSummary(cmd, cfg)
			return nil
		},
	})
	return cmd
}

func printConfigSummary(cmd *cobra.Command, cfg *config.Config) {
	out := cmd.OutOrStdout()
	name := cfg.File
	if name == "" {
		name = "(no file)"
	}
	store := "SQLite " + cfg.DatabasePath()
	if cfg.DatabaseURL != "" {
		store = "PostgreSQL"
	}
	fmt.Fprintf(out, "config %s is valid\n", name)
	fmt.Fprintf(out, "  store: %s\n  admin: %s\n", store, cfg.Admin.Listen)
	for _, api := range cfg.APIs() {
		where := api.Listen
		if api.Host != "" {
			where += " (host " + api.Host + ")"
		}
		fmt.Fprintf(out, "  api %s: preset %s on %s, %d routes\n", api.Name, api.Preset.Name, where, len(api.Routes))
	}
}
