package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/password"
	"github.com/keygate/keygate/server"
)

// chromiumPath finds a Chromium to drive. Without one the browser test is
// skipped locally and fails in CI, so CI never passes without running it.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is required in CI: apt-get install -y chromium")
	}
	t.Skip("Chromium not installed (apt-get install -y chromium); browser test skipped")
	return ""
}

// keygateDemo is the demo as `keygate demo` runs it, in this process: the
// two demo upstreams behind keygate on SQLite in a temp dir, seeded, with
// the dashboard on keygate's admin listener.
type keygateDemo struct {
	dashboardURL string
	menusURL     string
	eventsURL    string
	logs         *logtest.Buffer
	store        keygate.Store
}

func startKeygateDemo(t *testing.T) *keygateDemo {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	menusUpstream := listen(t)
	eventsUpstream := listen(t)
	text := demo.Config(demo.ConfigParams{
		DataDir: dir, AdminListen: freeAddr(t), MenusListen: freeAddr(t), EventsListen: freeAddr(t),
		MenusUpstream: "http://" + menusUpstream.Addr().String(), EventsUpstream: "http://" + eventsUpstream.Addr().String(),
	})
	cfgPath := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(cfgPath, text, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, server.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	verifier := srv.IdentityVerifier()
	serve(t, menusUpstream, demo.MenusAPI(func(r *http.Request) (*keygate.Identity, error) {
		return verifier.FromRequest(r, demo.MenusAPIName)
	}))
	serve(t, eventsUpstream, demo.EventsAPI(func(r *http.Request) (*keygate.Identity, error) {
		return verifier.FromRequest(r, demo.EventsAPIName)
	}))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	if _, err := demo.Seed(ctx, srv.Store(), srv.APIs(), password.Hash); err != nil {
		t.Fatal(err)
	}
	return &keygateDemo{
		dashboardURL: "http://" + srv.Addr("admin"),
		menusURL:     "http://" + srv.Addr(demo.MenusAPIName),
		eventsURL:    "http://" + srv.Addr(demo.EventsAPIName),
		logs:         logs,
		store:        srv.Store(),
	}
}

// authorizeURL registers an MCP client with keygate's OAuth server and
// returns the authorization request it would send a person to: PKCE S256,
// the menus API's MCP endpoint as resource, and a redirect to this computer,
// so the consent page shows its localhost warning too.
func (d *keygateDemo) authorizeURL(t *testing.T) string {
	t.Helper()
	const redirectURI = "http://127.0.0.1:33418/callback"
	metadata, _ := json.Marshal(map[string]any{
		"client_name":                "Layout test MCP client",
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "none",
	})
	resp, err := http.Post(d.dashboardURL+"/oauth/register", "application/json", bytes.NewReader(metadata))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var client struct {
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&client); err != nil || resp.StatusCode != http.StatusCreated || client.ClientID == "" {
		t.Fatalf("registering a client: status %d, %v", resp.StatusCode, err)
	}
	cfg := &oauth2.Config{
		ClientID: client.ClientID, RedirectURL: redirectURI,
		Scopes:   []string{"products:read", "dispensaries:read"}, // the demo MCP endpoint's scopes
		Endpoint: oauth2.Endpoint{AuthURL: d.dashboardURL + "/oauth/authorize"},
	}
	return cfg.AuthCodeURL("layout", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("resource", d.menusURL+"/mcp"))
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func freeAddr(t *testing.T) string {
	ln := listen(t)
	defer ln.Close()
	return ln.Addr().String()
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// callMenus asks the demo menus API for California products with token.
func (d *keygateDemo) callMenus(t *testing.T, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", d.menusURL+"/v2/products?states=California&page=1", nil)
	req.Header.Set("X-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// chrome is a headless Chromium driven through one tab, with the steps a
// test needs; every failure shows the page.
type chrome struct {
	t   *testing.T
	ctx context.Context
}

func startChrome(t *testing.T, d *keygateDemo, width, height int, timeout time.Duration) *chrome {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(width, height),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	// The first action starts the browser; its context must not time out.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	ctx, cancelRun := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelRun)
	// Let the page use the clipboard as a person's click would.
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    cdpbrowser.PermissionSettingGranted,
			Origin:     d.dashboardURL,
		}); err != nil {
			t.Fatalf("granting %s: %v", name, err)
		}
	}
	return &chrome{t: t, ctx: ctx}
}

func (c *chrome) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		html, _ := chromedp.Run(c.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		c.t.Fatalf("%s: %v\npage:\n%s", what, err, html)
	}
}

func (c *chrome) text(sel string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		c.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (c *chrome) html() string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

func (c *chrome) location() string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Location())
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// screenshot saves the whole page as name in the test's temp dir and,
// with KEYGATE_UPDATE_SCREENSHOTS=1, as docs/name, refreshing the image
// the README shows.
func (c *chrome) screenshot(dir, name string) {
	c.t.Helper()
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
	if os.Getenv("KEYGATE_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", name), png, 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	c.t.Logf("screenshot %s", path)
}

func (c *chrome) login() {
	c.t.Helper()
	c.run("log in",
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), demo.DemoEmail),
		chromedp.SendKeys(chromedp.CSS("#password"), demo.DemoPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
}

// call sends one request to a token route of the demo API through the
// real gateway.
func call(t *testing.T, url, header, value string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set(header, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestBrowserSeedFlow walks the seeds' token flow literally in real
// headless Chromium, once per preset: log in, Developers → API Tokens →
// Create, type a name, pick 30 days, submit without touching anything
// else, copy the token with the button, call a token route through the
// gateway (200), see it used, delete it after a confirmation, and get the
// preset's exact refusal.
func TestBrowserSeedFlow(t *testing.T) {
	chromiumPath(t)
	for _, c := range []struct {
		api, route, header, scheme, deleted string
	}{
		{demo.MenusAPIName, "/v2/products?states=California&page=1", "X-Token", "", `{"detail": "Not Found"}`},
		{demo.EventsAPIName, "/api/v1/attendees", "Authorization", "Bearer ", `{"message": "Invalid API token."}`},
	} {
		t.Run(c.api, func(t *testing.T) {
			d := startKeygateDemo(t)
			b := startChrome(t, d, 1280, 860, time.Minute)
			b.run("open the dashboard", chromedp.Navigate(d.dashboardURL+"/"))
			b.login()
			// The demo user administers the site, so login lands on the list of
			// organizations: navigate to the organization first.
			b.run("the organization",
				chromedp.WaitVisible(chromedp.CSS(`main a.org-link[href="/orgs/demo/tokens"]`)),
				chromedp.Click(chromedp.CSS(`main a.org-link[href="/orgs/demo/tokens"]`)),
				chromedp.WaitVisible(chromedp.CSS("nav.sidebar")),
			)
			b.run("Developers → API Tokens",
				chromedp.WaitVisible(chromedp.CSS(`nav.sidebar a[href="/orgs/demo/tokens"]`)),
				chromedp.Click(chromedp.CSS(`nav.sidebar a[href="/orgs/demo/tokens"]`)),
				chromedp.WaitVisible(chromedp.CSS("table.tokens")),
			)
			if got := b.text("nav.sidebar .nav-heading"); !strings.EqualFold(got, "Developers") {
				t.Errorf("sidebar heading %q", got)
			}
			b.run("Create token",
				chromedp.Click(chromedp.CSS(`.page-header a.button-primary`)),
				chromedp.WaitVisible(chromedp.CSS("#name")),
			)
			if c.api != demo.MenusAPIName {
				b.run("the API's tab", chromedp.Click(chromedp.CSS(`nav.tabs a[href$="api=`+c.api+`"]`)), chromedp.WaitVisible(chromedp.CSS(`nav.tabs a[aria-current="page"][href$="api=`+c.api+`"]`)))
			}
			if checked, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('input[name="expires_in"]:checked').value`)); err != nil || checked != "90d" {
				t.Fatalf("preselected expiry %q, %v; want 90d", checked, err)
			}
			b.run("name, 30 days, Create",
				chromedp.SendKeys(chromedp.CSS("#name"), "Production Server"),
				chromedp.Click(chromedp.CSS(`input[name="expires_in"][value="30d"]`)),
				chromedp.Click(chromedp.CSS(`form.form-card button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.CSS("#new-token")),
			)
			secret, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS("#new-token")))
			if err != nil || !strings.Contains(secret, "_live_") {
				t.Fatalf("shown token %q, %v", secret, err)
			}
			if warning := b.text(".show-once .alert-warning"); !strings.Contains(warning, "This is the only time the token is shown.") {
				t.Errorf("warning %q", warning)
			}
			if scopes := b.text(".show-once .meta"); !strings.Contains(scopes, strings.Join(demo.ScopesFor(c.api), " ")) {
				t.Errorf("created page does not list every scope: %q", scopes)
			}
			// The address is already the list's, so a reload cannot post again.
			if loc := b.location(); !strings.HasSuffix(loc, "/orgs/demo/tokens") {
				t.Errorf("show-once page address %s", loc)
			}
			b.run("copy", chromedp.Click(chromedp.CSS(`button[data-copy="new-token"]`)), chromedp.WaitVisible(chromedp.CSS(`button[data-copied]`)))
			copied, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
			if err != nil || copied != secret {
				t.Fatalf("clipboard holds %q (%v), want the token", copied, err)
			}
			base := d.menusURL
			if c.api == demo.EventsAPIName {
				base = d.eventsURL
			}
			if status, body := call(t, base+c.route, c.header, c.scheme+copied); status != http.StatusOK {
				t.Fatalf("calling %s with the new token: %d %s", c.route, status, body)
			}

			// Reload: the list, without the token, and used just now.
			b.run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("table.tokens")))
			if html := b.html(); strings.Contains(html, secret) || !strings.Contains(html, "Production Server") {
				t.Fatal("after reload the page shows the token, or lacks it from the list")
			}
			row := b.text(`table.tokens tr:has(a[aria-label="Delete token Production Server"])`)
			if strings.Contains(row, "Never") {
				t.Errorf("the row of a token called seconds ago says Never: %q", row)
			}
			if c.api == demo.MenusAPIName {
				b.screenshot(t.TempDir(), "dashboard-tokens.png")
			}

			b.run("delete",
				chromedp.Click(chromedp.CSS(`a[aria-label="Delete token Production Server"]`)),
				chromedp.WaitVisible(chromedp.CSS(".confirm button.button-danger")),
			)
			if got := b.text(".confirm h1"); got != "Delete token “Production Server”?" {
				t.Errorf("confirmation %q", got)
			}
			b.run("confirm", chromedp.Click(chromedp.CSS(".confirm button.button-danger")), chromedp.WaitVisible(chromedp.CSS(".alert-success")))
			if got := b.text(".alert-success"); got != "Token “Production Server” deleted. Requests using it are refused from now on." {
				t.Errorf("notice %q", got)
			}
			if status, body := call(t, base+c.route, c.header, c.scheme+secret); status != http.StatusNotFound && status != http.StatusUnauthorized || body != c.deleted {
				t.Fatalf("after the delete the API answers %d %s, want %s", status, body, c.deleted)
			}
			if logs := d.logs.String(); strings.Contains(logs, secret) {
				t.Fatal("the token appears in keygate's logs")
			}
		})
	}
}

// TestBrowserPagesFitTheWindow opens every dashboard page at phone, tablet,
// laptop and desktop widths and fails when one is wider than the window:
// a table wider than its card hides its Delete or Revoke buttons.
func TestBrowserPagesFitTheWindow(t *testing.T) {
	chromiumPath(t)
	d := startKeygateDemo(t)
	b := startChrome(t, d, 1440, 900, 4*time.Minute)
	shots := t.TempDir()
	const overflow = `document.documentElement.scrollWidth - document.documentElement.clientWidth`
	check := func(width int, page string) {
		t.Helper()
		over, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](overflow))
		if err != nil {
			t.Fatalf("%s at %d px: %v", page, width, err)
		}
		if over > 0 {
			b.screenshot(shots, page+"-"+strconv.Itoa(width)+".png")
			wide, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 6).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')`))
			t.Errorf("%s at %d px is %d px wider than the window: %s", page, width, over, wide)
		}
	}
	widths := []int{390, 1024, 1440, 1920}
	b.run("login page", chromedp.Navigate(d.dashboardURL+"/login"), chromedp.WaitVisible(chromedp.CSS("#email")))
	for _, w := range widths {
		b.run("resize", chromedp.EmulateViewport(int64(w), 900))
		check(w, "login")
	}
	// keygate's own OAuth login and consent pages, reached as an MCP client
	// sends a person there: a registered client, PKCE S256, the MCP resource.
	b.run("OAuth login page", chromedp.Navigate(d.authorizeURL(t)), chromedp.WaitVisible(chromedp.CSS("#email")))
	for _, w := range widths {
		b.run("resize", chromedp.EmulateViewport(int64(w), 900))
		check(w, "oauth-login")
		if w == 390 || w == 1440 {
			b.screenshot(shots, "oauth-login-"+strconv.Itoa(w)+".png")
		}
	}
	b.login()
	b.run("OAuth consent page", chromedp.WaitVisible(chromedp.CSS(`button[name="decision"][value="approve"]`)))
	for _, w := range widths {
		b.run("resize", chromedp.EmulateViewport(int64(w), 900))
		check(w, "oauth-consent")
		if w == 390 || w == 1440 {
			b.screenshot(shots, "oauth-consent-"+strconv.Itoa(w)+".png")
		}
	}
	// "Not you?" sits on the white card: it takes the accent colour of the
	// Allow button, not the top bar's pale link colour.
	if same, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`getComputedStyle(document.querySelector('form[action="logout"] .button-link')).color === getComputedStyle(document.querySelector('button[value="approve"]')).backgroundColor`)); err != nil || !same {
		t.Errorf(`the consent page's "Not you?" is not in the accent colour (%v)`, err)
	}
	b.run("back to the dashboard", chromedp.Navigate(d.dashboardURL+"/"))
	if loggedIn, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!document.querySelector('#email')`)); err != nil || !loggedIn {
		b.login()
	}
	b.run("logged in", chromedp.WaitVisible(chromedp.CSS("header .account")))
	pages := map[string]string{
		"tokens": "/orgs/demo/tokens", "members": "/orgs/demo/members", "plan": "/orgs/demo/settings",
		"usage": "/orgs/demo/usage", "webhooks": "/orgs/demo/webhooks", "connected-apps": "/orgs/demo/connected-apps", "email": "/orgs/demo/email",
		"organizations": "/orgs", "token-form": "/orgs/demo/tokens/new?api=canskan",
		"oauth-problem": "/oauth/authorize?client_id=unknown",
	}
	for _, w := range widths {
		b.run("resize", chromedp.EmulateViewport(int64(w), 900))
		for name, path := range pages {
			b.run(name, chromedp.Navigate(d.dashboardURL+path), chromedp.WaitVisible(chromedp.CSS("main")))
			check(w, name)
		}
		b.run("create a token",
			chromedp.Navigate(d.dashboardURL+"/orgs/demo/tokens/new?api=canskan"),
			chromedp.SendKeys(chromedp.CSS("#name"), "A rather long token name for the "+strconv.Itoa(w)+" px test"),
			chromedp.Click(chromedp.CSS(`form.form-card button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#new-token")),
		)
		check(w, "token-created")
		b.run("invite",
			chromedp.Navigate(d.dashboardURL+"/orgs/demo/members"),
			chromedp.SendKeys(chromedp.CSS("#member-email"), "a.rather.long.address."+strconv.Itoa(w)+"@subdomain.example.com"),
			chromedp.Click(chromedp.CSS(`form[action$="/invitations"] button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#invitation-link")),
		)
		check(w, "invitation-created")
		link, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS("#invitation-link")))
		if err != nil {
			t.Fatal(err)
		}
		// The invitation as someone other than its invitee sees it.
		b.run("invitation", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("main h1")))
		check(w, "invitation")
	}
	// The list with every token, as the README shows it.
	b.run("resize", chromedp.EmulateViewport(1280, 860))
	b.run("tokens", chromedp.Navigate(d.dashboardURL+"/orgs/demo/tokens"), chromedp.WaitVisible(chromedp.CSS("table.tokens")))
	check(1280, "tokens")
	visible, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`[...document.querySelectorAll('table.tokens a.button-danger-outline')].every(a => { const r = a.getBoundingClientRect(); return r.right <= document.documentElement.clientWidth && r.width > 0 })`))
	if err != nil || !visible {
		t.Errorf("a Delete button is outside the window at 1280 px (%v)", err)
	}
	b.screenshot(shots, "dashboard-tokens.png")
}
