package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/logtest"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/server"
)

// notices records what Options.Invitations hears, and fails when told to.
type notices struct {
	mu   sync.Mutex
	got  []manage.InvitationNotice
	fail bool
}

func (n *notices) InvitationSecret(string) string { return "" }

func (n *notices) InvitationCreated(_ context.Context, notice manage.InvitationNotice) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, notice)
	if n.fail {
		return errors.New("the mail server said no")
	}
	return nil
}

// Options.Invitations is the one place a sender of invitation emails plugs
// in: it is handed every invitation the management API (and dashboard)
// creates, with the same link the inviter gets; its failure is logged
// without the link and does not undo the invitation.
func TestInvitationNotifierHearsEachInvitation(t *testing.T) {
	admin := freeAddr(t)
	logs := &logtest.Buffer{}
	heard := &notices{}
	srv := runServer(t, "data_dir: "+t.TempDir()+"\nadmin: {listen: "+admin+", public_url: https://keygate.example.test}\n",
		server.Options{Logger: debugLogger(logs), Invitations: heard})
	ctx := context.Background()
	org := &keygate.Organization{Slug: "acme", Name: "Acme", Plan: "free"}
	if err := manage.CreateOrganization(ctx, srv.Store(), org, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, key, err := manage.CreateAdminKey(ctx, srv.Store(), "ci", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	invite := func(email string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+admin+"/api/v1/orgs/acme/invitations", strings.NewReader(`{"email": "`+email+`", "role": "member"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var out struct{ URL string }
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &out) != nil {
			t.Fatalf("invite: %d %s", resp.StatusCode, body)
		}
		return out.URL
	}
	link := invite("dev@acme.test")
	heard.mu.Lock()
	heard.fail = true
	heard.mu.Unlock()
	failedLink := invite("ops@acme.test")

	heard.mu.Lock()
	defer heard.mu.Unlock()
	if len(heard.got) != 2 {
		t.Fatalf("heard %d invitations, want 2", len(heard.got))
	}
	n := heard.got[0]
	if n.Link != link || !strings.HasPrefix(link, "https://keygate.example.test/invitations/") ||
		n.Invitation.Email != "dev@acme.test" || n.Organization.Slug != "acme" || n.InvitedBy != "admin key ci" {
		t.Errorf("notice %+v, link %s", n, link)
	}
	if !strings.Contains(logs.String(), "invitation notice failed") {
		t.Error("a failed notice was not logged")
	}
	for _, l := range []string{link, failedLink} {
		_, secret, _ := strings.Cut(l, "/invitations/")
		if strings.Contains(logs.String(), secret) {
			t.Fatal("an invitation's secret reached the logs")
		}
	}
	pending, err := srv.Store().ListInvitations(ctx, keygate.InvitationFilter{OrganizationID: org.ID, PendingAt: time.Now()})
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending %v %v: a failed notice undid an invitation", pending, err)
	}
}
