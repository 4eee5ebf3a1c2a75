package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/sqlite"
)

// members invite prints the link once; invitations lists the pending ones
// without it; revoke-invitation ends it. The store keeps only its hash.
func TestCLIMembersInvitations(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keygate.yaml"), []byte("data_dir: .\nadmin:\n  public_url: https://keygate.example.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) { return runCLI(t, append(args, "--data-dir", dir)...) }
	if out, err := cli("orgs", "create", "--slug", "acme"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := cli("members", "invite", "--org", "acme", "--email", "Dev@Acme.test", "--role", "owner")
	if err != nil {
		t.Fatalf("invite: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	link := lines[len(lines)-1]
	secret, ok := strings.CutPrefix(link, "https://keygate.example.test/invitations/")
	if !ok || len(secret) != 43 || !strings.Contains(out, "invited dev@acme.test to acme as owner") {
		t.Fatalf("invite printed:\n%s", out)
	}
	list, err := cli("members", "invitations", "--org", "acme")
	if err != nil || !strings.Contains(list, "dev@acme.test") || !strings.Contains(list, "owner") || strings.Contains(list, secret) {
		t.Fatalf("invitations: %v\n%s", err, list)
	}
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := store.FindInvitationByHash(context.Background(), keygate.HashToken(secret))
	store.Close()
	if err != nil || inv.InvitedBy != "cli" || inv.Email != "dev@acme.test" {
		t.Fatalf("stored %+v %v", inv, err)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "keygate.db")); strings.Contains(string(raw), secret) {
		t.Fatal("the invitation's secret is in the database file")
	}

	if out, err := cli("members", "revoke-invitation", "--org", "acme", inv.ID); err != nil || !strings.Contains(out, "revoked invitation "+inv.ID) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if list, _ := cli("members", "invitations", "--org", "acme"); strings.Contains(list, inv.ID) {
		t.Fatalf("revoked invitation still listed:\n%s", list)
	}
	if out, err := cli("members", "revoke-invitation", "--org", "acme", inv.ID); err == nil || !strings.Contains(err.Error(), "not found or no longer pending") {
		t.Fatalf("revoking twice: %v\n%s", err, out)
	}
	if out, err := cli("members", "invite", "--org", "acme", "--email", "not an email"); err == nil || !strings.Contains(err.Error(), "Enter a valid email address.") {
		t.Fatalf("bad email: %v\n%s", err, out)
	}
	if out, err := cli("members", "invite", "--org", "nope", "--email", "a@b.test"); err == nil || !strings.Contains(err.Error(), `organization "nope"`) {
		t.Fatalf("unknown org: %v\n%s", err, out)
	}
	if out, err := cli("members", "list", "--org", "acme"); err != nil || !strings.Contains(out, "EMAIL") {
		t.Fatalf("list: %v\n%s", err, out)
	}
}
