package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/manage"
)

// Site administrators and admin keys list the keys in force (never a
// secret) and revoke them; the revoked key is refused on its next request.
func TestAdminKeysListAndRevoke(t *testing.T) {
	f := newFixture(t)
	deploy, secret, err := manage.CreateAdminKey(context.Background(), f.store, "deploy", f.now)
	if err != nil {
		t.Fatal(err)
	}
	deployKey := caller{bearer: secret}

	var list struct {
		AdminKeys []struct{ ID, Name, Hint string } `json:"admin_keys"`
	}
	r := f.do(f.login(f.sys), "GET", "/api/v1/admin-keys", "").expect(http.StatusOK, &list)
	if len(list.AdminKeys) != 2 || list.AdminKeys[0].ID != deploy.ID || list.AdminKeys[0].Name != "deploy" || list.AdminKeys[0].Hint != deploy.Hint {
		t.Fatalf("admin keys %+v", list.AdminKeys)
	}
	for _, s := range []string{secret, f.adminKey, deploy.Hash} {
		if strings.Contains(r.Body.String(), s) {
			t.Fatalf("the list shows a secret or hash:\n%s", r.Body)
		}
	}

	// Owners and members of organizations manage none.
	for _, c := range []caller{f.login(f.owner), f.login(f.member)} {
		f.do(c, "GET", "/api/v1/admin-keys", "").expectError(403, "forbidden", "Only site administrators can do this.")
		f.do(c, "DELETE", "/api/v1/admin-keys/"+deploy.ID, "").expectError(403, "forbidden", "Only site administrators can do this.")
	}
	f.do(deployKey, "GET", "/api/v1/me", "").expect(http.StatusOK, nil)

	f.do(f.key(), "DELETE", "/api/v1/admin-keys/"+deploy.ID, "").expect(http.StatusNoContent, nil)
	f.do(deployKey, "GET", "/api/v1/me", "").expectError(401, "unauthorized", "Invalid admin key.")
	f.do(f.key(), "DELETE", "/api/v1/admin-keys/"+deploy.ID, "").expectError(404, "not_found", `Admin key "`+deploy.ID+`" not found.`)
	f.do(f.key(), "GET", "/api/v1/admin-keys", "").expect(http.StatusOK, &list)
	if len(list.AdminKeys) != 1 || list.AdminKeys[0].ID == deploy.ID {
		t.Fatalf("after revoking: %+v", list.AdminKeys)
	}
	if !strings.Contains(f.logs.String(), "admin key revoked") || strings.Contains(f.logs.String(), secret) {
		t.Errorf("revocation not logged, or logged with the secret:\n%s", f.logs)
	}
}
