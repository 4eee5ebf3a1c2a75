package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// The OAuth contract (keygate.OAuthStore):
//
//   - CreateOAuthClient fills in an empty ID and a zero CreatedAt;
//     duplicates of a client id, code hash or token hash are ECONFLICT.
//   - Redeeming a code and rotating a refresh token are atomic: of several
//     concurrent attempts, on any handles, exactly one succeeds; every
//     other attempt, and any later one, is ECONFLICT and leaves the grant
//     revoked (the revocation is committed although the call fails).
//   - A failed redemption (unknown code, wrong grant id) stores nothing.
//   - Tokens outlive nothing: a revoked grant's refresh token no longer
//     rotates (ENOTFOUND).
//   - A token's Scopes are kept as given: nil (the grant's scopes) stays
//     nil, a narrowed list comes back in order.
//   - ListOAuthGrants is newest first and leaves revoked grants out unless
//     asked. Each listed grant's ExpiresAt is the latest expiry of its
//     tokens (the current refresh token's), zero when none is left.
var oauthTests = []test{
	{"ClientCreateAndFind", testOAuthClientCreateAndFind},
	{"CodeCreateAndFind", testOAuthCodeCreateAndFind},
	{"RedeemCode", testOAuthRedeemCode},
	{"RedeemCodeTwiceRevokes", testOAuthRedeemCodeTwice},
	{"RedeemCodeFailuresStoreNothing", testOAuthRedeemCodeFailures},
	{"RedeemCodeConcurrent", testOAuthRedeemCodeConcurrent},
	{"RotateRefreshToken", testOAuthRotate},
	{"RotateNarrowsAccessTokenScopes", testOAuthRotateNarrowed},
	{"RotateReuseRevokesGrant", testOAuthRotateReuse},
	{"RotateOnlyRefreshTokens", testOAuthRotateOnlyRefresh},
	{"RotateConcurrent", testOAuthRotateConcurrent},
	{"ListAndRevokeGrants", testOAuthListAndRevokeGrants},
	{"ListedGrantExpiry", testOAuthListedGrantExpiry},
	{"Purge", testOAuthPurge},
}

// oauthStore returns a handle's OAuth part.
func (e *env) oauthStore(s keygate.Store) keygate.OAuthStore { return s }

func (e *env) newOAuthCode(clientID string) *keygate.OAuthCode {
	id := keygate.NewID("code")
	return &keygate.OAuthCode{
		Hash:           keygate.HashToken(id),
		GrantID:        keygate.NewID("ogr"),
		ClientID:       clientID,
		UserID:         "usr_approver",
		OrganizationID: "org_granting",
		RedirectURI:    "http://127.0.0.1:33418/callback",
		CodeChallenge:  "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		Resource:       "https://api.example.com/mcp",
		Scopes:         []string{"products:read", "dispensaries:read"},
		Offline:        true,
		CreatedAt:      e.now,
		ExpiresAt:      e.at(time.Minute),
	}
}

func (e *env) createOAuthCode(s keygate.OAuthStore, clientID string) *keygate.OAuthCode {
	e.t.Helper()
	c := e.newOAuthCode(clientID)
	must(e.t, "CreateOAuthCode", s.CreateOAuthCode(e.ctx, c))
	return c
}

// grantFor returns the grant a code's redemption stores.
func (e *env) grantFor(c *keygate.OAuthCode, at time.Time) *keygate.OAuthGrant {
	return &keygate.OAuthGrant{
		ID:             c.GrantID,
		ClientID:       c.ClientID,
		ClientName:     "Example MCP client",
		UserID:         c.UserID,
		OrganizationID: c.OrganizationID,
		Resource:       c.Resource,
		Scopes:         c.Scopes,
		CreatedAt:      at,
	}
}

// newOAuthToken returns a token of kind, not yet stored; its hash comes
// from a fresh id, as the suite has no secrets.
func (e *env) newOAuthToken(kind string, at time.Time, ttl time.Duration) *keygate.OAuthToken {
	return &keygate.OAuthToken{
		Hash:      keygate.HashToken(keygate.NewID(kind)),
		Kind:      kind,
		CreatedAt: at,
		ExpiresAt: at.Add(ttl),
	}
}

// redeem redeems a new code and returns its grant, access and refresh token.
func (e *env) redeem(s keygate.OAuthStore) (*keygate.OAuthGrant, *keygate.OAuthToken, *keygate.OAuthToken) {
	e.t.Helper()
	c := e.createOAuthCode(s, "kgc_client")
	g := e.grantFor(c, e.now)
	access := e.newOAuthToken(keygate.OAuthAccessToken, e.now, time.Hour)
	refresh := e.newOAuthToken(keygate.OAuthRefreshToken, e.now, 24*time.Hour)
	must(e.t, "RedeemOAuthCode", s.RedeemOAuthCode(e.ctx, c.Hash, e.now, g, access, refresh))
	return g, access, refresh
}

func testOAuthClientCreateAndFind(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	c := &keygate.OAuthClient{
		Name:                    "Example MCP client",
		URI:                     "https://client.example.com",
		RedirectURIs:            []string{"http://127.0.0.1:33418/callback", "https://client.example.com/cb"},
		GrantTypes:              []string{keygate.OAuthGrantAuthorizationCode, keygate.OAuthGrantRefreshToken},
		TokenEndpointAuthMethod: keygate.OAuthAuthSecretBasic,
		SecretHash:              keygate.HashToken("secret"),
		Source:                  keygate.OAuthClientRegistered,
	}
	must(t, "CreateOAuthClient", s.CreateOAuthClient(e.ctx, c))
	if c.ID == "" || c.CreatedAt.IsZero() {
		t.Fatalf("CreateOAuthClient left ID %q, CreatedAt %v", c.ID, c.CreatedAt)
	}
	got, err := s.FindOAuthClient(e.ctx, c.ID)
	must(t, "FindOAuthClient", err)
	c.CreatedAt = c.CreatedAt.Truncate(time.Millisecond)
	equal(t, "FindOAuthClient", got, c)

	dup := *c
	wantCode(t, "CreateOAuthClient with a taken id", s.CreateOAuthClient(e.ctx, &dup), keygate.ECONFLICT)
	_, err = s.FindOAuthClient(e.ctx, "kgc_unknown")
	wantCode(t, "FindOAuthClient(unknown)", err, keygate.ENOTFOUND)
}

func testOAuthCodeCreateAndFind(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	c := e.createOAuthCode(s, "kgc_client")
	got, err := s.FindOAuthCode(e.ctx, c.Hash)
	must(t, "FindOAuthCode", err)
	equal(t, "FindOAuthCode", got, c)

	dup := *c
	dup.GrantID = keygate.NewID("ogr")
	wantCode(t, "CreateOAuthCode with a taken hash", s.CreateOAuthCode(e.ctx, &dup), keygate.ECONFLICT)
	_, err = s.FindOAuthCode(e.ctx, keygate.HashToken("unknown"))
	wantCode(t, "FindOAuthCode(unknown)", err, keygate.ENOTFOUND)
}

func testOAuthRedeemCode(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	c := e.createOAuthCode(s, "kgc_client")
	at := e.at(10 * time.Second)
	g := e.grantFor(c, at)
	access := e.newOAuthToken(keygate.OAuthAccessToken, at, time.Hour)
	refresh := e.newOAuthToken(keygate.OAuthRefreshToken, at, 24*time.Hour)
	must(t, "RedeemOAuthCode", s.RedeemOAuthCode(e.ctx, c.Hash, at, g, access, refresh))

	used, err := s.FindOAuthCode(e.ctx, c.Hash)
	must(t, "FindOAuthCode", err)
	if used.UsedAt == nil || !used.UsedAt.Equal(at) {
		t.Errorf("code UsedAt = %v, want %v", used.UsedAt, at)
	}
	gotGrant, err := s.FindOAuthGrant(e.ctx, g.ID)
	must(t, "FindOAuthGrant", err)
	equal(t, "FindOAuthGrant", gotGrant, g)
	for _, want := range []*keygate.OAuthToken{access, refresh} {
		got, err := s.FindOAuthToken(e.ctx, want.Hash)
		must(t, "FindOAuthToken", err)
		want.GrantID = g.ID
		equal(t, "FindOAuthToken("+want.Kind+")", got, want)
	}
	_, err = s.FindOAuthToken(e.ctx, keygate.HashToken("unknown"))
	wantCode(t, "FindOAuthToken(unknown)", err, keygate.ENOTFOUND)
	_, err = s.FindOAuthGrant(e.ctx, "ogr_unknown")
	wantCode(t, "FindOAuthGrant(unknown)", err, keygate.ENOTFOUND)
}

func testOAuthRedeemCodeTwice(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	c := e.createOAuthCode(s, "kgc_client")
	g := e.grantFor(c, e.now)
	access := e.newOAuthToken(keygate.OAuthAccessToken, e.now, time.Hour)
	must(t, "RedeemOAuthCode", s.RedeemOAuthCode(e.ctx, c.Hash, e.now, g, access))

	second := e.newOAuthToken(keygate.OAuthAccessToken, e.at(time.Second), time.Hour)
	err := s.RedeemOAuthCode(e.ctx, c.Hash, e.at(time.Second), e.grantFor(c, e.at(time.Second)), second)
	wantCode(t, "RedeemOAuthCode again", err, keygate.ECONFLICT)

	got, err := s.FindOAuthGrant(e.ctx, g.ID)
	must(t, "FindOAuthGrant", err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(e.at(time.Second)) {
		t.Errorf("grant RevokedAt = %v after the code's reuse, want %v", got.RevokedAt, e.at(time.Second))
	}
	_, err = s.FindOAuthToken(e.ctx, second.Hash)
	wantCode(t, "FindOAuthToken(token of the second redemption)", err, keygate.ENOTFOUND)
}

func testOAuthRedeemCodeFailures(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	c := e.createOAuthCode(s, "kgc_client")
	access := e.newOAuthToken(keygate.OAuthAccessToken, e.now, time.Hour)

	err := s.RedeemOAuthCode(e.ctx, keygate.HashToken("unknown"), e.now, e.grantFor(c, e.now), access)
	wantCode(t, "RedeemOAuthCode(unknown code)", err, keygate.ENOTFOUND)

	wrong := e.grantFor(c, e.now)
	wrong.ID = keygate.NewID("ogr")
	err = s.RedeemOAuthCode(e.ctx, c.Hash, e.now, wrong, access)
	wantCode(t, "RedeemOAuthCode(grant id other than the code's)", err, keygate.EINVALID)

	got, err := s.FindOAuthCode(e.ctx, c.Hash)
	must(t, "FindOAuthCode", err)
	if got.UsedAt != nil {
		t.Errorf("code UsedAt = %v after failed redemptions, want nil", got.UsedAt)
	}
	_, err = s.FindOAuthToken(e.ctx, access.Hash)
	wantCode(t, "FindOAuthToken after failed redemptions", err, keygate.ENOTFOUND)
	_, err = s.FindOAuthGrant(e.ctx, wrong.ID)
	wantCode(t, "FindOAuthGrant after failed redemptions", err, keygate.ENOTFOUND)
}

// testOAuthRedeemCodeConcurrent redeems one code from several handles at
// once: one wins, the others are reuse and revoke what the winner got.
func testOAuthRedeemCodeConcurrent(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	c := e.createOAuthCode(s, "kgc_client")
	const n = 6
	handles := make([]keygate.OAuthStore, n)
	for i := range handles {
		handles[i] = e.oauthStore(e.open())
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok := e.newOAuthToken(keygate.OAuthAccessToken, e.now, time.Hour)
			errs[i] = handles[i].RedeemOAuthCode(e.ctx, c.Hash, e.now, e.grantFor(c, e.now), tok)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantCode(t, "concurrent RedeemOAuthCode", err, keygate.ECONFLICT)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent redemptions succeeded, want exactly 1", won, n)
	}
	g, err := s.FindOAuthGrant(e.ctx, c.GrantID)
	must(t, "FindOAuthGrant", err)
	if g.RevokedAt == nil {
		t.Error("grant not revoked although its code was redeemed more than once")
	}
}

func testOAuthRotate(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	g, _, refresh := e.redeem(s)
	at := e.at(time.Minute)
	access2 := e.newOAuthToken(keygate.OAuthAccessToken, at, time.Hour)
	refresh2 := e.newOAuthToken(keygate.OAuthRefreshToken, at, 24*time.Hour)
	must(t, "RotateOAuthRefreshToken", s.RotateOAuthRefreshToken(e.ctx, refresh.Hash, at, access2, refresh2))

	old, err := s.FindOAuthToken(e.ctx, refresh.Hash)
	must(t, "FindOAuthToken(old refresh)", err)
	if old.UsedAt == nil || !old.UsedAt.Equal(at) {
		t.Errorf("old refresh token UsedAt = %v, want %v", old.UsedAt, at)
	}
	for _, want := range []*keygate.OAuthToken{access2, refresh2} {
		got, err := s.FindOAuthToken(e.ctx, want.Hash)
		must(t, "FindOAuthToken(successor)", err)
		want.GrantID = g.ID
		equal(t, "successor "+want.Kind, got, want)
	}
	gotGrant, err := s.FindOAuthGrant(e.ctx, g.ID)
	must(t, "FindOAuthGrant", err)
	if gotGrant.LastUsedAt == nil || !gotGrant.LastUsedAt.Equal(at) || gotGrant.RevokedAt != nil {
		t.Errorf("grant LastUsedAt = %v, RevokedAt = %v; want %v and nil", gotGrant.LastUsedAt, gotGrant.RevokedAt, at)
	}
	// The successor rotates in turn.
	refresh3 := e.newOAuthToken(keygate.OAuthRefreshToken, e.at(2*time.Minute), 24*time.Hour)
	must(t, "RotateOAuthRefreshToken(successor)", s.RotateOAuthRefreshToken(e.ctx, refresh2.Hash, e.at(2*time.Minute), refresh3))
}

func testOAuthRotateNarrowed(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	_, access, refresh := e.redeem(s)
	at := e.at(time.Minute)
	narrowed := e.newOAuthToken(keygate.OAuthAccessToken, at, time.Hour)
	narrowed.Scopes = []string{"products:read"}
	refresh2 := e.newOAuthToken(keygate.OAuthRefreshToken, at, 24*time.Hour)
	must(t, "RotateOAuthRefreshToken", s.RotateOAuthRefreshToken(e.ctx, refresh.Hash, at, narrowed, refresh2))
	for _, want := range []*keygate.OAuthToken{access, narrowed, refresh2} {
		got, err := s.FindOAuthToken(e.ctx, want.Hash)
		must(t, "FindOAuthToken", err)
		if (got.Scopes == nil) != (want.Scopes == nil) || len(got.Scopes) != len(want.Scopes) ||
			(want.Scopes != nil && got.Scopes[0] != want.Scopes[0]) {
			t.Errorf("%s token scopes %#v, want %#v", want.Kind, got.Scopes, want.Scopes)
		}
	}
}

func testOAuthRotateReuse(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	g, _, refresh := e.redeem(s)
	refresh2 := e.newOAuthToken(keygate.OAuthRefreshToken, e.now, 24*time.Hour)
	must(t, "RotateOAuthRefreshToken", s.RotateOAuthRefreshToken(e.ctx, refresh.Hash, e.at(time.Minute), refresh2))

	stolen := e.newOAuthToken(keygate.OAuthRefreshToken, e.now, 24*time.Hour)
	err := s.RotateOAuthRefreshToken(e.ctx, refresh.Hash, e.at(2*time.Minute), stolen)
	wantCode(t, "RotateOAuthRefreshToken(already used)", err, keygate.ECONFLICT)
	got, err := s.FindOAuthGrant(e.ctx, g.ID)
	must(t, "FindOAuthGrant", err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(e.at(2*time.Minute)) {
		t.Errorf("grant RevokedAt = %v after reuse, want %v", got.RevokedAt, e.at(2*time.Minute))
	}
	_, err = s.FindOAuthToken(e.ctx, stolen.Hash)
	wantCode(t, "FindOAuthToken(successor of reused token)", err, keygate.ENOTFOUND)

	// The family is revoked: the legitimate successor is dead too.
	err = s.RotateOAuthRefreshToken(e.ctx, refresh2.Hash, e.at(3*time.Minute),
		e.newOAuthToken(keygate.OAuthRefreshToken, e.now, time.Hour))
	wantCode(t, "RotateOAuthRefreshToken(successor in revoked family)", err, keygate.ENOTFOUND)
}

func testOAuthRotateOnlyRefresh(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	_, access, _ := e.redeem(s)
	next := e.newOAuthToken(keygate.OAuthRefreshToken, e.now, time.Hour)
	wantCode(t, "RotateOAuthRefreshToken(access token)",
		s.RotateOAuthRefreshToken(e.ctx, access.Hash, e.now, next), keygate.ENOTFOUND)
	wantCode(t, "RotateOAuthRefreshToken(unknown)",
		s.RotateOAuthRefreshToken(e.ctx, keygate.HashToken("unknown"), e.now, next), keygate.ENOTFOUND)
	_, err := s.FindOAuthToken(e.ctx, next.Hash)
	wantCode(t, "FindOAuthToken(successor of refused rotations)", err, keygate.ENOTFOUND)
}

func testOAuthRotateConcurrent(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	g, _, refresh := e.redeem(s)
	const n = 4
	handles := make([]keygate.OAuthStore, n)
	for i := range handles {
		handles[i] = e.oauthStore(e.open())
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			next := e.newOAuthToken(keygate.OAuthRefreshToken, e.now, time.Hour)
			errs[i] = handles[i].RotateOAuthRefreshToken(e.ctx, refresh.Hash, e.at(time.Minute), next)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantCode(t, "concurrent RotateOAuthRefreshToken", err, keygate.ECONFLICT)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent rotations succeeded, want exactly 1", won, n)
	}
	got, err := s.FindOAuthGrant(e.ctx, g.ID)
	must(t, "FindOAuthGrant", err)
	if got.RevokedAt == nil {
		t.Error("grant not revoked although its refresh token was used more than once")
	}
}

func testOAuthListAndRevokeGrants(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	var grants []*keygate.OAuthGrant
	for i, owner := range []struct{ org, user, client string }{
		{"org_a", "usr_1", "kgc_x"},
		{"org_a", "usr_2", "kgc_y"},
		{"org_b", "usr_1", "kgc_x"},
	} {
		c := e.newOAuthCode(owner.client)
		c.OrganizationID, c.UserID = owner.org, owner.user
		must(t, "CreateOAuthCode", s.CreateOAuthCode(e.ctx, c))
		g := e.grantFor(c, e.at(time.Duration(i)*time.Second))
		must(t, "RedeemOAuthCode", s.RedeemOAuthCode(e.ctx, c.Hash, g.CreatedAt, g,
			e.newOAuthToken(keygate.OAuthAccessToken, g.CreatedAt, time.Hour)))
		grants = append(grants, g)
	}
	ids := func(list []*keygate.OAuthGrant) []string {
		var out []string
		for _, g := range list {
			out = append(out, g.ID)
		}
		return out
	}
	list := func(f keygate.OAuthGrantFilter) []string {
		t.Helper()
		got, err := s.ListOAuthGrants(e.ctx, f)
		must(t, "ListOAuthGrants", err)
		return ids(got)
	}
	equal(t, "all grants", list(keygate.OAuthGrantFilter{}), []string{grants[2].ID, grants[1].ID, grants[0].ID})
	equal(t, "grants of org_a", list(keygate.OAuthGrantFilter{OrganizationID: "org_a"}), []string{grants[1].ID, grants[0].ID})
	equal(t, "grants of usr_1", list(keygate.OAuthGrantFilter{UserID: "usr_1"}), []string{grants[2].ID, grants[0].ID})
	equal(t, "grants of kgc_y", list(keygate.OAuthGrantFilter{ClientID: "kgc_y"}), []string{grants[1].ID})

	must(t, "RevokeOAuthGrant", s.RevokeOAuthGrant(e.ctx, grants[0].ID, e.at(time.Hour)))
	wantCode(t, "RevokeOAuthGrant again", s.RevokeOAuthGrant(e.ctx, grants[0].ID, e.at(time.Hour)), keygate.ENOTFOUND)
	wantCode(t, "RevokeOAuthGrant(unknown)", s.RevokeOAuthGrant(e.ctx, "ogr_unknown", e.now), keygate.ENOTFOUND)
	equal(t, "active grants of org_a", list(keygate.OAuthGrantFilter{OrganizationID: "org_a"}), []string{grants[1].ID})
	equal(t, "grants of org_a with revoked", list(keygate.OAuthGrantFilter{OrganizationID: "org_a", IncludeRevoked: true}),
		[]string{grants[1].ID, grants[0].ID})
	got, err := s.FindOAuthGrant(e.ctx, grants[0].ID)
	must(t, "FindOAuthGrant", err)
	if got.RevokedAt == nil || !got.RevokedAt.Equal(e.at(time.Hour)) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, e.at(time.Hour))
	}
}

func testOAuthListedGrantExpiry(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	expiry := func(id string) time.Time {
		t.Helper()
		list, err := s.ListOAuthGrants(e.ctx, keygate.OAuthGrantFilter{IncludeRevoked: true})
		must(t, "ListOAuthGrants", err)
		for _, g := range list {
			if g.ID == id {
				return g.ExpiresAt
			}
		}
		t.Fatalf("grant %s not listed", id)
		return time.Time{}
	}
	g, _, refresh := e.redeem(s)
	if got := expiry(g.ID); !got.Equal(refresh.ExpiresAt) {
		t.Errorf("ExpiresAt = %v after redemption, want the refresh token's %v", got, refresh.ExpiresAt)
	}
	at := e.at(time.Hour)
	refresh2 := e.newOAuthToken(keygate.OAuthRefreshToken, at, 24*time.Hour)
	must(t, "RotateOAuthRefreshToken", s.RotateOAuthRefreshToken(e.ctx, refresh.Hash, at,
		e.newOAuthToken(keygate.OAuthAccessToken, at, time.Hour), refresh2))
	if got := expiry(g.ID); !got.Equal(refresh2.ExpiresAt) {
		t.Errorf("ExpiresAt = %v after a refresh, want the new refresh token's %v", got, refresh2.ExpiresAt)
	}

	// Without a refresh token the access token's expiry ends the grant; once
	// purged, nothing is left.
	c := e.createOAuthCode(s, "kgc_client")
	short := e.grantFor(c, e.now)
	access := e.newOAuthToken(keygate.OAuthAccessToken, e.now, time.Hour)
	must(t, "RedeemOAuthCode", s.RedeemOAuthCode(e.ctx, c.Hash, e.now, short, access))
	if got := expiry(short.ID); !got.Equal(access.ExpiresAt) {
		t.Errorf("ExpiresAt = %v with an access token only, want its %v", got, access.ExpiresAt)
	}
	must(t, "PurgeOAuth", s.PurgeOAuth(e.ctx, e.at(2*time.Hour), e.now))
	if got := expiry(short.ID); !got.IsZero() {
		t.Errorf("ExpiresAt = %v with no token left, want zero", got)
	}
}

func testOAuthPurge(t *testing.T, e *env) {
	s := e.oauthStore(e.store)
	newClient := func(createdAt time.Time) *keygate.OAuthClient {
		c := &keygate.OAuthClient{
			Name: "Client", RedirectURIs: []string{"https://client.example.com/cb"},
			TokenEndpointAuthMethod: keygate.OAuthAuthNone, Source: keygate.OAuthClientRegistered,
			CreatedAt: createdAt,
		}
		must(t, "CreateOAuthClient", s.CreateOAuthClient(e.ctx, c))
		return c
	}
	abandoned := newClient(e.at(-48 * time.Hour))
	withGrant := newClient(e.at(-48 * time.Hour))
	recent := newClient(e.now)

	// A grant (redeemed code) for withGrant, with an expired and a live token.
	c := e.newOAuthCode(withGrant.ID)
	c.ExpiresAt = e.at(-time.Second)
	must(t, "CreateOAuthCode", s.CreateOAuthCode(e.ctx, c))
	expiredToken := e.newOAuthToken(keygate.OAuthAccessToken, e.at(-2*time.Hour), time.Hour)
	liveToken := e.newOAuthToken(keygate.OAuthRefreshToken, e.now, time.Hour)
	must(t, "RedeemOAuthCode", s.RedeemOAuthCode(e.ctx, c.Hash, e.at(-2*time.Hour), e.grantFor(c, e.at(-2*time.Hour)), expiredToken, liveToken))
	liveCode := e.createOAuthCode(s, recent.ID)

	must(t, "PurgeOAuth", s.PurgeOAuth(e.ctx, e.now, e.at(-24*time.Hour)))

	_, err := s.FindOAuthClient(e.ctx, abandoned.ID)
	wantCode(t, "abandoned client after purge", err, keygate.ENOTFOUND)
	for _, kept := range []*keygate.OAuthClient{withGrant, recent} {
		_, err := s.FindOAuthClient(e.ctx, kept.ID)
		must(t, "client with a grant or recent, after purge", err)
	}
	_, err = s.FindOAuthCode(e.ctx, c.Hash)
	wantCode(t, "expired code after purge", err, keygate.ENOTFOUND)
	_, err = s.FindOAuthCode(e.ctx, liveCode.Hash)
	must(t, "live code after purge", err)
	_, err = s.FindOAuthToken(e.ctx, expiredToken.Hash)
	wantCode(t, "expired token after purge", err, keygate.ENOTFOUND)
	_, err = s.FindOAuthToken(e.ctx, liveToken.Hash)
	must(t, "live token after purge", err)
}
