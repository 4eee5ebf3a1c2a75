package dashboard_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/demo"
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
	logs         *syncBuffer
}

func startKeygateDemo(t *testing.T) *keygateDemo {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logs := &syncBuffer{}
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
		logs:         logs,
	}
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

// TestBrowserTokenLifecycle walks the flow a person takes in real headless
// Chromium: log in, create a token that expires in 30 days, see it once,
// copy it, call the API with it, reload (it is gone), delete it after a
// confirmation, and find the API refusing it.
func TestBrowserTokenLifecycle(t *testing.T) {
	execPath := chromiumPath(t)
	d := startKeygateDemo(t)
	shots := t.TempDir()

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
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
		chromedp.WindowSize(1280, 860),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first action starts the browser; its context must not time out.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	ctx, cancelRun := context.WithTimeout(ctx, 90*time.Second)
	defer cancelRun()
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
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("%s: %v\npage:\n%s", what, err, html)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	pageHTML := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	screenshot := func(name string, sel string) {
		t.Helper()
		var png []byte
		var err error
		if sel == "" {
			png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		} else {
			png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
		}
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		// KEYGATE_SCREENSHOTS=docs refreshes the screenshots committed for
		// the README.
		if dir := os.Getenv("KEYGATE_SCREENSHOTS"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("screenshot %s", path)
	}

	// Log in; the login page sends us on to the token list.
	run("log in",
		chromedp.Navigate(d.dashboardURL+"/orgs/demo/tokens"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), demo.DemoEmail),
		chromedp.SendKeys(chromedp.CSS("#password"), demo.DemoPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.tokens")),
	)
	if got := text("h1"); got != "API Tokens" {
		t.Fatalf("after login: h1 %q", got)
	}

	// Create a token with 30 days.
	run("open the create form",
		chromedp.Click(chromedp.CSS(`.page-header a.button-primary`)),
		chromedp.WaitVisible(chromedp.CSS("#name")),
	)
	if checked, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('input[name="expires_in"]:checked').value`)); err != nil || checked != "90d" {
		t.Fatalf("preselected expiry %q, %v; want 90d", checked, err)
	}
	run("fill in and create",
		chromedp.SendKeys(chromedp.CSS("#name"), "Browser test"),
		chromedp.Click(chromedp.CSS(`input[name="expires_in"][value="30d"]`)),
		chromedp.Click(chromedp.CSS(`form.form-card button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#new-token")),
	)
	secret, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#new-token")))
	if err != nil || !strings.HasPrefix(secret, "cm_live_") {
		t.Fatalf("shown token %q, %v", secret, err)
	}
	if warning := text(".show-once .alert-warning"); !strings.Contains(warning, "This is the only time the token is shown.") {
		t.Errorf("warning %q", warning)
	}
	// The address is already the list's, so a reload cannot post again.
	if loc := location(); !strings.HasSuffix(loc, "/orgs/demo/tokens") {
		t.Errorf("show-once page address %s", loc)
	}
	screenshot("dashboard-token-created.png", ".show-once")

	// Copy it with the button, and read the clipboard back.
	run("copy", chromedp.Click(chromedp.CSS(`button[data-copy="new-token"]`)), chromedp.WaitVisible(chromedp.CSS(`button[data-copied]`)))
	copied, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("reading the clipboard: %v", err)
	}
	if copied != secret {
		t.Fatalf("clipboard holds %q, want the token", copied)
	}

	// The copied token works against the demo API.
	if status, body := d.callMenus(t, copied); status != http.StatusOK || !strings.Contains(body, `"California"`) {
		t.Fatalf("calling the API with the new token: %d %s", status, body)
	}

	// Reload: the list, without the token.
	run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("table.tokens")))
	if html := pageHTML(); strings.Contains(html, secret) || !strings.Contains(html, "Browser test") {
		t.Fatal("after reload the page shows the token, or lacks it from the list")
	}
	if got := text("h1"); got != "API Tokens" {
		t.Fatalf("after reload: h1 %q", got)
	}
	screenshot("dashboard-tokens.png", "")

	// Delete, with confirmation.
	run("delete",
		chromedp.Click(chromedp.CSS(`a[aria-label="Delete token Browser test"]`)),
		chromedp.WaitVisible(chromedp.CSS(".confirm button.button-danger")),
	)
	if got := text(".confirm h1"); got != "Delete token “Browser test”?" {
		t.Errorf("confirmation %q", got)
	}
	run("confirm", chromedp.Click(chromedp.CSS(".confirm button.button-danger")), chromedp.WaitVisible(chromedp.CSS(".alert-success")))
	if got := text(".alert-success"); got != "Token “Browser test” deleted. Requests using it are refused from now on." {
		t.Errorf("notice %q", got)
	}
	if html := pageHTML(); strings.Contains(html, secret) {
		t.Fatal("the token list shows the secret")
	}

	// The very next request is refused, with the preset's exact answer.
	if status, body := d.callMenus(t, secret); status != http.StatusNotFound || body != `{"detail": "Not Found"}` {
		t.Fatalf("after the delete the API answers %d %s", status, body)
	}
	if logs := d.logs.String(); strings.Contains(logs, secret) {
		t.Fatal("the token appears in keygate's logs")
	}
}
