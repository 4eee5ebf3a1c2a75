package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// rotate gives tok a new secret, keeping the old one for grace.
func (f *fixture) rotate(tok *keygate.Token, grace keygate.RotationGrace, at time.Time) string {
	f.t.Helper()
	rot, secret, err := keygate.NewTokenSecret(f.menus.Tokens, tok, grace, at)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.store.RotateToken(context.Background(), rot); err != nil {
		f.t.Fatal(err)
	}
	return secret
}

// The old secret works, from the cache, until its grace period ends and
// not a moment after, with no change published at that moment.
func TestRotatedTokenOldSecretWorksUntilTheGraceEnds(t *testing.T) {
	f := newFixture(t)
	tok, oldSecret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	rot, newSecret, err := keygate.NewTokenSecret(f.menus.Tokens, tok, keygate.GraceNone, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rot.PreviousHashExpiresAt = time.Now().Add(400 * time.Millisecond)
	if _, err := f.store.RotateToken(context.Background(), rot); err != nil {
		t.Fatal(err)
	}
	oldH, newH := map[string][]string{"X-Token": {oldSecret}}, map[string][]string{"X-Token": {newSecret}}
	waitFor(t, "the new secret", func() bool { return serve(f.menusGW, "GET", "/v2/products", newH).status == 200 })
	if got := serve(f.menusGW, "GET", "/v2/products", oldH); got.status != 200 && time.Now().Before(rot.PreviousHashExpiresAt) {
		t.Fatalf("old secret refused during its grace period: %d", got.status)
	}
	time.Sleep(time.Until(rot.PreviousHashExpiresAt))
	expect(t, "old secret after the grace", serve(f.menusGW, "GET", "/v2/products", oldH), 404, cmNotFound)
	if got := serve(f.menusGW, "GET", "/v2/products", newH); got.status != 200 {
		t.Errorf("new secret after the grace: %d", got.status)
	}
	if got := serve(f.eventsGW, "GET", "/api/v1/organization", map[string][]string{"Authorization": {"Bearer " + oldSecret}}); got.status == 200 {
		t.Error("old secret accepted by another API")
	}
}

func TestRotateWithoutGraceRefusesTheOldSecretWithinTheFeedLatency(t *testing.T) {
	f := newFixture(t)
	tok, oldSecret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	oldH := map[string][]string{"X-Token": {oldSecret}}
	if got := serve(f.menusGW, "GET", "/v2/products", oldH); got.status != 200 {
		t.Fatalf("before rotation: %d", got.status)
	}
	newSecret := f.rotate(tok, keygate.GraceNone, time.Now())
	// The cached entry goes when the change feed says so, as for a delete.
	took := waitFor(t, "old secret refused", func() bool {
		return serve(f.menusGW, "GET", "/v2/products", oldH).status == 404
	})
	t.Logf("old secret refused %v after a rotation without grace", took)
	if got := serve(f.menusGW, "GET", "/v2/products", map[string][]string{"X-Token": {newSecret}}); got.status != 200 {
		t.Errorf("new secret: %d", got.status)
	}
}

// While both secrets are cached, deleting the token drops both.
func TestDeletingARotatedTokenRefusesBothSecrets(t *testing.T) {
	f := newFixture(t)
	tok, oldSecret := f.token(f.menus, []string{"products:read"}, keygate.Expiry90Days, f.now)
	newSecret := f.rotate(tok, keygate.Grace24Hours, time.Now())
	oldH, newH := map[string][]string{"X-Token": {oldSecret}}, map[string][]string{"X-Token": {newSecret}}
	waitFor(t, "both secrets cached and working", func() bool {
		return serve(f.menusGW, "GET", "/v2/products", oldH).status == 200 &&
			serve(f.menusGW, "GET", "/v2/products", newH).status == 200
	})
	if err := f.store.RevokeToken(context.Background(), tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both secrets refused", func() bool {
		return serve(f.menusGW, "GET", "/v2/products", oldH).status == 404 &&
			serve(f.menusGW, "GET", "/v2/products", newH).status == 404
	})
}
