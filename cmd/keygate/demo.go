package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/server"
)

type demoFlags struct {
	menusListen  string
	eventsListen string
	adminListen  string
}

func newDemoCommand(g *globals) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run both demo APIs behind keygate with a seeded organization, user and tokens",
		Long: `demo starts a CannMenus-style API (preset cannmenus) and a CANSKAN-style API
(preset canskan) behind keygate, seeds the demo organization, user and one
token per API, writes DIR/keygate.yaml (every setting shown) and DIR/demo.env,
and prints curl lines to paste. Started again on the same --data-dir it reuses
the data. Without --data-dir the data goes to a new temporary directory,
named in the banner and removed when the demo stops.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g, f)
		},
	}
	cmd.Flags().StringVar(&f.menusListen, "menus-listen", "127.0.0.1:8080", "address of the menus API (cannmenus)")
	cmd.Flags().StringVar(&f.eventsListen, "events-listen", "127.0.0.1:8081", "address of the events API (canskan)")
	cmd.Flags().StringVar(&f.adminListen, "admin-listen", "127.0.0.1:8090", "address of keygate's dashboard, management API and OAuth server")
	cmd.AddCommand(newDemoUpstreamCommand())
	return cmd
}

// Demo is a running `keygate demo`: the keygate server and the two demo
// upstream APIs it guards.
type Demo struct {
	Dir    string
	Server *server.Server
	Env    map[string]string // what demo.env holds
	// Created reports whether this start made the demo data, and so the
	// tokens, which are then shown once.
	Created bool
	// Temporary: the data is in a directory made for this run (no
	// --data-dir), removed when the demo stops cleanly.
	Temporary bool
	// ShutdownGrace is its config's listeners.shutdown_grace: how long
	// in-flight requests get to finish when it stops, as with keygate
	// serve.
	ShutdownGrace time.Duration
	upstreams     []*http.Server
}

func runDemo(ctx context.Context, g *globals, f *demoFlags) error {
	d, err := startDemo(ctx, g, f)
	if err != nil {
		return err
	}
	printDemoBanner(g.stdout, d)
	<-ctx.Done()
	fmt.Fprintln(g.stderr, "keygate demo: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), d.ShutdownGrace)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		return err
	}
	return d.removeTemporary(g.stderr)
}

// removeTemporary deletes a run's temporary data directory, so demos
// started without --data-dir leave nothing behind.
func (d *Demo) removeTemporary(w io.Writer) error {
	if !d.Temporary {
		return nil
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		return fmt.Errorf("removing the demo's temporary data %s: %w", d.Dir, err)
	}
	fmt.Fprintf(w, "keygate demo: removed its temporary data %s; start it with --data-dir DIR to keep data between runs\n", d.Dir)
	return nil
}

// startDemo brings the whole demo up and returns once every listener is
// bound and the data is seeded.
func startDemo(ctx context.Context, g *globals, f *demoFlags) (_ *Demo, err error) {
	dir, err := demoDir(g.dataDir)
	if err != nil {
		return nil, err
	}
	d := &Demo{Dir: dir, Temporary: g.dataDir == ""}
	defer func() {
		if err != nil {
			_ = d.Shutdown(context.Background())
			_ = d.removeTemporary(io.Discard)
		}
	}()
	upstreams, err := listenUpstreams(3)
	if err != nil {
		return nil, err
	}
	menusLn, eventsLn, mcpLn := upstreams[0], upstreams[1], upstreams[2]
	menusURL := "http://" + menusLn.Addr().String()
	cfg, err := writeDemoConfig(dir, g.databaseURL, f, menusURL, "http://"+eventsLn.Addr().String(), "http://"+mcpLn.Addr().String()+"/mcp")
	if err != nil {
		closeAll(upstreams)
		return nil, err
	}
	d.ShutdownGrace = cfg.Listeners.ShutdownGrace
	if d.Server, err = server.New(ctx, cfg, server.Options{Logger: g.logger(cfg), Version: readBuildInfo().Version}); err != nil {
		closeAll(upstreams)
		return nil, err
	}
	verifier := d.Server.IdentityVerifier()
	readerFor := func(api string) demo.IdentityReader {
		return func(r *http.Request) (*keygate.Identity, error) { return verifier.FromRequest(r, api) }
	}
	d.serveUpstream(menusLn, demo.MenusAPI(readerFor(demo.MenusAPIName)))
	d.serveUpstream(eventsLn, demo.EventsAPI(readerFor(demo.EventsAPIName)))
	// The MCP server reads the menus API directly, passing on the
	// identity keygate verified, so entitlements apply to tool calls too.
	d.serveUpstream(mcpLn, demoMCPServer(menusURL, readerFor(demo.MenusAPIName)))
	if err := d.Server.Start(); err != nil {
		return nil, err
	}
	if err := d.seed(ctx, cfg); err != nil {
		return nil, err
	}
	return d, nil
}

func demoDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "keygate-demo-")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}

// listenUpstreams binds n loopback ports for the demo upstreams.
func listenUpstreams(n int) ([]net.Listener, error) {
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll(lns)
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// writeDemoConfig writes DIR/keygate.yaml anew (the upstream ports change
// every start) and loads it through the same loader as `keygate serve`.
func writeDemoConfig(dir, databaseURL string, f *demoFlags, menusUpstream, eventsUpstream, mcpUpstream string) (*config.Config, error) {
	text := demo.Config(demo.ConfigParams{
		DataDir: dir, DatabaseURL: databaseURL, AdminListen: f.adminListen,
		MenusListen: f.menusListen, EventsListen: f.eventsListen,
		MenusUpstream: menusUpstream, EventsUpstream: eventsUpstream, MCPUpstream: mcpUpstream,
	})
	path := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(path, text, 0o600); err != nil {
		return nil, err
	}
	return config.Load(path)
}

func (d *Demo) serveUpstream(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	d.upstreams = append(d.upstreams, srv)
	go func() { _ = srv.Serve(ln) }()
}

// seed creates the demo data on first start and writes demo.env; later
// starts read the tokens back from demo.env, the only place they exist, and
// refresh the addresses in it.
func (d *Demo) seed(ctx context.Context, cfg *config.Config) error {
	store := d.Server.Store()
	res, err := demo.Seed(ctx, store, d.Server.APIs(), password.Hash)
	if err != nil {
		return fmt.Errorf("seeding demo data: %w", err)
	}
	envPath := filepath.Join(d.Dir, "demo.env")
	d.Env = map[string]string{}
	if !res.Created && fileExists(envPath) {
		if d.Env, err = readEnvFile(envPath); err != nil {
			return err
		}
	} else {
		d.Created = true
		adminKey, err := createAdminKey(ctx, store, "demo")
		if err != nil {
			return err
		}
		d.Env["CANNMENUS_API_TOKEN"] = res.Tokens[demo.MenusAPIName]
		d.Env["CANSKAN_API_TOKEN"] = res.Tokens[demo.EventsAPIName]
		d.Env["KEYGATE_ADMIN_KEY"] = adminKey
	}
	d.Env["CANNMENUS_BASE_URL"] = "http://" + d.Server.Addr(demo.MenusAPIName)
	d.Env["CANSKAN_BASE_URL"] = "http://" + d.Server.Addr(demo.EventsAPIName)
	d.Env["KEYGATE_URL"] = "http://" + d.Server.Addr("admin")
	d.Env["KEYGATE_DATA_DIR"] = d.Dir
	return writeEnvFile(envPath, d.Env)
}

// Shutdown stops keygate, then the upstreams behind it.
func (d *Demo) Shutdown(ctx context.Context) error {
	var errs []error
	if d.Server != nil {
		errs = append(errs, d.Server.Shutdown(ctx))
	}
	for _, u := range d.upstreams {
		errs = append(errs, u.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// printDemoBanner shows the tokens themselves only on the start that
// created them; later starts refer to demo.env, so a token is printed once.
func printDemoBanner(w io.Writer, d *Demo) {
	e := maps.Clone(d.Env)
	if !d.Created {
		e["CANNMENUS_API_TOKEN"], e["CANSKAN_API_TOKEN"] = "$CANNMENUS_API_TOKEN", "$CANSKAN_API_TOKEN"
		fmt.Fprintf(w, "\nkeygate demo reuses its data: run  source %s/demo.env  first for the tokens below.\n", d.Dir)
	}
	where := ""
	if d.Temporary {
		where = "\n  (temporary: removed when the demo stops; run keygate demo --data-dir DIR to keep it)"
	}
	fmt.Fprintf(w, `
keygate demo is running. Data: %[1]s%[8]s

  Dashboard      %[2]s   (log in as demo@example.com / demo)
  Variables      source %[1]s/demo.env

CannMenus-style API (preset cannmenus), products in California, Colorado, Michigan:
  curl "%[3]s/v2/products?states=California&page=1" \
    -H "X-Token: %[4]s"

MCP endpoint (OAuth 2.1; log in as demo@example.com / demo when the client asks):
  %[7]s/mcp

CANSKAN-style API (preset canskan):
  curl %[5]s/p/abc123def456
  curl %[5]s/api/v1/organization \
    -H "Authorization: Bearer %[6]s"

Stop with Ctrl-C.
`, d.Dir, e["KEYGATE_URL"], e["CANNMENUS_BASE_URL"], e["CANNMENUS_API_TOKEN"], e["CANSKAN_BASE_URL"], e["CANSKAN_API_TOKEN"], e["CANNMENUS_BASE_URL"], where)
}

func writeEnvFile(path string, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by keygate demo. Holds secrets: keep it private.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}
