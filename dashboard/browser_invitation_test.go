package dashboard_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/demo"
	"github.com/keygate/keygate/manage"
)

// TestBrowserInvitation walks an invitation in real headless Chromium: the
// demo organization's administrator invites a colleague who has a login,
// copies the link with the button and logs out; the colleague opens the
// link, logs in from the invitation page, accepts, and lands in the
// organization, which their switcher now lists.
func TestBrowserInvitation(t *testing.T) {
	chromiumPath(t)
	d := startKeygateDemo(t)
	const email, pw = "dev@example.com", "plum orchard 42"
	if _, err := manage.CreateUser(context.Background(), d.store, manage.NewUser{Email: email, Name: "Dev", Password: pw}, time.Now()); err != nil {
		t.Fatal(err)
	}
	b := startChrome(t, d, 1280, 860, time.Minute)
	b.run("open the dashboard", chromedp.Navigate(d.dashboardURL+"/"))
	b.login()
	b.run("Members",
		chromedp.WaitVisible(chromedp.CSS(`main a.org-link[href="/orgs/`+demo.DemoOrgSlug+`/tokens"]`)),
		chromedp.Navigate(d.dashboardURL+"/orgs/"+demo.DemoOrgSlug+"/members"),
		chromedp.WaitVisible(chromedp.CSS("#member-email")),
	)
	b.run("invite",
		chromedp.SendKeys(chromedp.CSS("#member-email"), email),
		chromedp.SetValue(chromedp.CSS("#member-role"), "member"),
		chromedp.Click(chromedp.CSS(`form[action$="/invitations"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#invitation-link")),
	)
	if warning := b.text(".show-once .alert-warning"); !strings.Contains(warning, "This is the only time the link is shown.") {
		t.Errorf("warning %q", warning)
	}
	// The address is already the members page's: a reload cannot post again.
	if loc := b.location(); !strings.HasSuffix(loc, "/orgs/"+demo.DemoOrgSlug+"/members") {
		t.Errorf("show-once page address %s", loc)
	}
	b.run("copy", chromedp.Click(chromedp.CSS(`button[data-copy="invitation-link"]`)), chromedp.WaitVisible(chromedp.CSS(`button[data-copied]`)))
	link, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil || !strings.HasPrefix(link, d.dashboardURL+"/invitations/") {
		t.Fatalf("clipboard holds %q (%v), want the invitation link", link, err)
	}
	b.run("reload: pending, without the link", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#member-email")))
	if html := b.html(); strings.Contains(html, link) || !strings.Contains(html, "Pending invitations") {
		t.Fatal("after reload the members page shows the link, or no pending invitation")
	}
	b.run("log out",
		chromedp.Click(chromedp.CSS(`.account button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#email")),
	)

	// The colleague opens the link and logs in from it.
	b.run("open the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#login-password")))
	if got := b.text("main h1"); got != "Join "+demo.DemoOrgName {
		t.Errorf("invitation heading %q", got)
	}
	b.run("log in from the invitation",
		chromedp.SendKeys(chromedp.CSS("#login-password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/accept"] button`)),
	)
	b.run("accept",
		chromedp.Click(chromedp.CSS(`form[action$="/accept"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".alert-success")),
	)
	if got := b.text(".alert-success"); got != "Welcome to "+demo.DemoOrgName+"." {
		t.Errorf("notice %q", got)
	}
	if loc := b.location(); !strings.HasSuffix(loc, "/orgs/"+demo.DemoOrgSlug+"/tokens?joined=1") {
		t.Errorf("after accepting at %s", loc)
	}
	if acct := b.text(".account-email"); acct != email {
		t.Errorf("logged in as %q", acct)
	}
	if menu := b.html(); !strings.Contains(menu, `href="/orgs/`+demo.DemoOrgSlug+`/tokens" aria-current="true"`) {
		t.Error("the organization switcher does not list the organization joined")
	}
	// The link is used up.
	b.run("open the link again", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(".status-code")))
	if got := b.text("main"); !strings.Contains(got, "This invitation is not valid") {
		t.Errorf("used link shows %q", got)
	}
	dev, err := d.store.FindUserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	org, _ := d.store.FindOrganizationBySlug(context.Background(), demo.DemoOrgSlug)
	ms, err := d.store.ListMemberships(context.Background(), keygate.MembershipFilter{OrganizationID: org.ID, UserID: dev.ID})
	if err != nil || len(ms) != 1 || ms[0].Role != keygate.RoleMember {
		t.Fatalf("memberships %v %v", ms, err)
	}
	_, secret, _ := strings.Cut(link, "/invitations/")
	if strings.Contains(d.logs.String(), secret) {
		t.Fatal("the invitation's secret appears in keygate's logs")
	}
}
