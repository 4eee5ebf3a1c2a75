// Command keygate runs keygate and manages its data: serve, demo, migrate,
// and the orgs, users, tokens and admin-keys commands. Every command finds
// its data with --config FILE or --data-dir DIR, and works while a server
// runs on the same database.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/audit"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/server"
	"github.com/keygate/keygate/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keygate:", userMessage(err))
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	configFile  string
	dataDir     string
	databaseURL string
	stdout      io.Writer
	stderr      io.Writer
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "keygate",
		Short:         "API tokens, rate limits, plans and OAuth for any HTTP API, in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configFile, "config", "c", "", "config file (YAML; env KEYGATE_CONFIG)")
	pf.StringVar(&g.dataDir, "data-dir", "", "data directory (uses DIR/keygate.yaml when present)")
	pf.StringVar(&g.databaseURL, "database-url", "", "PostgreSQL URL (overrides the config; env KEYGATE_DATABASE_URL)")
	root.AddCommand(
		newInitCommand(), newServeCommand(g), newDemoCommand(g), newMigrateCommand(g),
		newOrgsCommand(g), newUsersCommand(g), newMembersCommand(g), newTokensCommand(g), newAdminKeysCommand(g),
		newAuditCommand(g), newEmailCommand(g), newConfigCommand(g), newHealthcheckCommand(g), newVersionCommand(),
	)
	return root
}

// loadConfig finds the config: --config (or KEYGATE_CONFIG), else
// DIR/keygate.yaml under --data-dir, else an empty config on --data-dir
// (enough for commands that need no API definitions), else ./keygate.yaml.
func (g *globals) loadConfig() (*config.Config, error) {
	var cfg *config.Config
	var err error
	if g.configFile == "" {
		// Set in the container image, so `docker exec … keygate tokens
		// list` finds the mounted config without flags.
		g.configFile = os.Getenv("KEYGATE_CONFIG")
	}
	switch {
	case g.configFile != "":
		cfg, err = config.Load(g.configFile)
	case g.dataDir != "" && fileExists(filepath.Join(g.dataDir, "keygate.yaml")):
		cfg, err = config.Load(filepath.Join(g.dataDir, "keygate.yaml"))
	case g.dataDir != "":
		cfg, err = config.Parse(dataDirConfigName, []byte("data_dir: "+quoteYAML(g.dataDir)+"\n"))
	case fileExists("keygate.yaml"):
		cfg, err = config.Load("keygate.yaml")
	default:
		return nil, errors.New("say where keygate's data is: --config FILE or --data-dir DIR (or run where keygate.yaml is)")
	}
	if err != nil {
		return nil, err
	}
	if g.dataDir != "" && g.configFile != "" {
		cfg.DataDir = g.dataDir
	}
	if g.databaseURL != "" {
		cfg.DatabaseURL = g.databaseURL
	}
	return cfg, nil
}

// dataDirConfigName names the config made for --data-dir without a file.
const dataDirConfigName = "(--data-dir)"

// openStore loads the config and opens its store.
func (g *globals) openStore(ctx context.Context) (*config.Config, keygate.Store, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	store, err := server.OpenStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	// What a command changes is audited, by "cli" and the operating system
	// user who ran it (the command sets its context with audit.AsCLI);
	// audit.* events are stored for a server on the same database to send.
	// Emails they call for (a member added) are queued in the outbox for
	// a server on the same database to send.
	log := &audit.Log{Store: store, Logger: g.logger(cfg)}
	hooks := webhook.New(store, webhook.Options{Logger: log.Logger})
	outbox, err := cliOutbox(cfg, store, log.Logger)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	log.Shipper = func(ctx context.Context, e *keygate.AuditEntry) {
		hooks.EmitAudit(ctx, e)
		outbox.NotifyAudit(ctx, e)
	}
	return cfg, audit.Wrap(store, log), nil
}

// withStore makes a command body that runs with the config and its store
// open, closing the store afterwards.
func (g *globals) withStore(run func(cmd *cobra.Command, args []string, cfg *config.Config, store keygate.Store) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cfg, store, err := g.openStore(cmd.Context())
		if err != nil {
			return err
		}
		defer store.Close()
		cmd.SetContext(audit.AsCLI(cmd.Context(), osUser()))
		return run(cmd, args, cfg, store)
	}
}

func (g *globals) logger(cfg *config.Config) *slog.Logger {
	return slog.New(cfg.Log.Handler(g.stderr))
}

// osUser names who runs the command, for the audit log.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func quoteYAML(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// userMessage turns an error into what a person at a terminal should read.
func userMessage(err error) string {
	var e *keygate.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}
