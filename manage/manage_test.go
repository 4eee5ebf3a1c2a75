package manage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/sqlite"
)

func TestFindAPI(t *testing.T) {
	menus := &keygate.API{Name: "menus"}
	events := &keygate.API{Name: "events"}
	if a, err := manage.FindAPI([]*keygate.API{menus}, ""); err != nil || a != menus {
		t.Errorf("the only API is the default: %v %v", a, err)
	}
	for _, tc := range []struct{ name, msg string }{
		{"", "Choose an API: menus, events."},
		{"billing", `Unknown API "billing": choose one of menus, events.`},
	} {
		_, err := manage.FindAPI([]*keygate.API{menus, events}, tc.name)
		if keygate.ErrorCode(err) != keygate.EINVALID || keygate.ErrorMessage(err) != tc.msg {
			t.Errorf("FindAPI(%q): %v", tc.name, err)
		}
	}
}

func TestExpiryChoices(t *testing.T) {
	api := &keygate.API{}
	if got := fmt.Sprint(manage.ExpiryChoices(api)); got != "[7d 30d 90d 1y]" {
		t.Errorf("without never: %s", got)
	}
	api.Tokens.AllowNever = true
	if got := fmt.Sprint(manage.ExpiryChoices(api)); got != "[7d 30d 90d 1y never]" {
		t.Errorf("with never: %s", got)
	}
}

func TestSplitList(t *testing.T) {
	if got := strings.Join(manage.SplitList(" California,\r\nNew York ,, \n"), "|"); got != "California|New York" {
		t.Errorf("got %q", got)
	}
}

func TestAdminKeys(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keygate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	key, secret, err := manage.CreateAdminKey(ctx, store, " ci ", now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "kgadm_") || !keygate.WellFormedToken(secret, "kgadm_") || key.Name != "ci" ||
		key.Hash != keygate.HashToken(secret) || key.Hint != "kgadm_…"+secret[len(secret)-4:] {
		t.Fatalf("key %+v, secret %q", key, secret)
	}
	got, err := manage.AuthenticateAdminKey(ctx, store, secret)
	if err != nil || got.ID != key.ID {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	// One character off fails the checksum: refused without a lookup.
	last := "a"
	if strings.HasSuffix(secret, "a") {
		last = "b"
	}
	tampered := secret[:len(secret)-1] + last
	for _, bad := range []string{"", "kgadm_", tampered, "cm_live_" + secret[6:], strings.Repeat("k", 500)} {
		if _, err := manage.AuthenticateAdminKey(ctx, store, bad); keygate.ErrorCode(err) != keygate.EUNAUTHORIZED {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := store.RevokeAdminKey(ctx, key.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := manage.AuthenticateAdminKey(ctx, store, secret); keygate.ErrorCode(err) != keygate.EUNAUTHORIZED || keygate.ErrorMessage(err) != "Invalid admin key." {
		t.Errorf("revoked key: %v", err)
	}
	if _, _, err := manage.CreateAdminKey(ctx, store, "  ", now); keygate.ErrorCode(err) != keygate.EINVALID {
		t.Errorf("blank name: %v", err)
	}
}
