package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var tokenTests = []test{
	{"CreateAndFind", testTokenCreateAndFind},
	{"OptionalFieldsEmpty", testTokenOptionalFieldsEmpty},
	{"Duplicates", testTokenDuplicates},
	{"UnknownOrganization", testTokenUnknownOrganization},
	{"NotFound", testTokenNotFound},
	{"FindReturnsRevokedAndExpired", testTokenFindRevokedAndExpired},
	{"List", testTokenList},
	{"Revoke", testTokenRevoke},
	{"TouchNeverMovesBackwards", testTokenTouch},
}

func testTokenCreateAndFind(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.newToken(org.ID, "cannmenus", e.at(-time.Hour))
	tok.Environment = keygate.EnvironmentTest
	tok.LastUsedAt = ptr(e.at(-time.Minute))
	tok.ExpiresAt = ptr(e.at(90 * 24 * time.Hour))
	must(t, "CreateToken", e.store.CreateToken(e.ctx, tok, 0))
	want := *tok

	got, err := e.store.FindTokenByHash(e.ctx, tok.Hash)
	must(t, "FindTokenByHash", err)
	equal(t, "FindTokenByHash", got, &want)

	got, err = e.store.FindTokenByID(e.ctx, tok.ID)
	must(t, "FindTokenByID", err)
	equal(t, "FindTokenByID", got, &want)
}

func testTokenOptionalFieldsEmpty(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.newToken(org.ID, "canskan", e.now)
	tok.Scopes = nil
	must(t, "CreateToken", e.store.CreateToken(e.ctx, tok, 0))

	got, err := e.store.FindTokenByHash(e.ctx, tok.Hash)
	must(t, "FindTokenByHash", err)
	equal(t, "token without scopes, expiry or use", got, tok)
}

func testTokenDuplicates(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	first := e.createToken(org.ID, "cannmenus", e.now)

	sameHash := e.newToken(org.ID, "cannmenus", e.now)
	sameHash.Hash = first.Hash
	wantCode(t, "CreateToken with a stored hash", e.store.CreateToken(e.ctx, sameHash, 0), keygate.ECONFLICT)

	sameID := e.newToken(org.ID, "cannmenus", e.now)
	sameID.ID = first.ID
	wantCode(t, "CreateToken with a stored id", e.store.CreateToken(e.ctx, sameID, 0), keygate.ECONFLICT)

	tokens, err := e.store.ListTokens(e.ctx, keygate.TokenFilter{IncludeRevoked: true})
	must(t, "ListTokens", err)
	if len(tokens) != 1 {
		t.Errorf("ListTokens returned %d tokens after refused creates, want 1", len(tokens))
	}
}

func testTokenUnknownOrganization(t *testing.T, e *env) {
	tok := e.newToken("org_missing", "cannmenus", e.now)
	wantCode(t, "CreateToken for an unknown organization", e.store.CreateToken(e.ctx, tok, 0), keygate.ENOTFOUND)
	wantCode(t, "CreateToken for an unknown organization with a limit", e.store.CreateToken(e.ctx, tok, 2), keygate.ENOTFOUND)
}

func testTokenNotFound(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	e.createToken(org.ID, "cannmenus", e.now)
	_, err := e.store.FindTokenByHash(e.ctx, keygate.HashToken("cm_live_unknown"))
	wantCode(t, "FindTokenByHash", err, keygate.ENOTFOUND)
	_, err = e.store.FindTokenByID(e.ctx, "tok_missing")
	wantCode(t, "FindTokenByID", err, keygate.ENOTFOUND)
	wantCode(t, "RevokeToken", e.store.RevokeToken(e.ctx, "tok_missing", e.now), keygate.ENOTFOUND)
}

func testTokenFindRevokedAndExpired(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	expired := e.newToken(org.ID, "cannmenus", e.at(-48*time.Hour))
	expired.ExpiresAt = ptr(e.at(-24 * time.Hour))
	must(t, "CreateToken(expired)", e.store.CreateToken(e.ctx, expired, 0))
	revoked := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, revoked.ID, e.now))

	got, err := e.store.FindTokenByHash(e.ctx, expired.Hash)
	must(t, "FindTokenByHash(expired)", err)
	equal(t, "expired token", got, expired)

	got, err = e.store.FindTokenByHash(e.ctx, revoked.Hash)
	must(t, "FindTokenByHash(revoked)", err)
	want := *revoked
	want.RevokedAt = ptr(e.now)
	equal(t, "revoked token", got, &want)
}

func testTokenList(t *testing.T, e *env) {
	acme, globex := e.createOrganization("acme"), e.createOrganization("globex")
	oldest := e.createToken(acme.ID, "cannmenus", e.at(1*time.Second))
	second := e.createToken(acme.ID, "cannmenus", e.at(2*time.Second))
	revoked := e.createToken(acme.ID, "cannmenus", e.at(3*time.Second))
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, revoked.ID, e.at(10*time.Second)))
	revoked.RevokedAt = ptr(e.at(10 * time.Second))
	expired := e.newToken(acme.ID, "cannmenus", e.at(4*time.Second))
	expired.ExpiresAt = ptr(e.at(-time.Hour))
	must(t, "CreateToken(expired)", e.store.CreateToken(e.ctx, expired, 0))
	otherAPI := e.createToken(acme.ID, "canskan", e.at(5*time.Second))
	otherOrg := e.createToken(globex.ID, "cannmenus", e.at(6*time.Second))

	tests := []struct {
		name   string
		filter keygate.TokenFilter
		want   []*keygate.Token
	}{
		{"everything", keygate.TokenFilter{}, []*keygate.Token{otherOrg, otherAPI, expired, second, oldest}},
		{"everything with revoked", keygate.TokenFilter{IncludeRevoked: true},
			[]*keygate.Token{otherOrg, otherAPI, expired, revoked, second, oldest}},
		{"organization", keygate.TokenFilter{OrganizationID: acme.ID}, []*keygate.Token{otherAPI, expired, second, oldest}},
		{"organization with revoked", keygate.TokenFilter{OrganizationID: acme.ID, IncludeRevoked: true},
			[]*keygate.Token{otherAPI, expired, revoked, second, oldest}},
		{"organization and API", keygate.TokenFilter{OrganizationID: acme.ID, API: "cannmenus"},
			[]*keygate.Token{expired, second, oldest}},
		{"API", keygate.TokenFilter{API: "cannmenus"}, []*keygate.Token{otherOrg, expired, second, oldest}},
		{"other organization", keygate.TokenFilter{OrganizationID: globex.ID}, []*keygate.Token{otherOrg}},
		{"no match", keygate.TokenFilter{OrganizationID: globex.ID, API: "canskan"}, nil},
	}
	for _, tt := range tests {
		got, err := e.store.ListTokens(e.ctx, tt.filter)
		must(t, "ListTokens("+tt.name+")", err)
		equal(t, "ListTokens("+tt.name+")", got, tt.want)
	}
}

func testTokenRevoke(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	keep := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	at := e.at(-time.Minute)
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, tok.ID, at))

	got, err := e.store.FindTokenByID(e.ctx, tok.ID)
	must(t, "FindTokenByID", err)
	equal(t, "RevokedAt", got.RevokedAt, &at)

	wantCode(t, "RevokeToken twice", e.store.RevokeToken(e.ctx, tok.ID, e.now), keygate.ENOTFOUND)
	got, err = e.store.FindTokenByID(e.ctx, tok.ID)
	must(t, "FindTokenByID", err)
	equal(t, "RevokedAt after a second revoke", got.RevokedAt, &at)

	got, err = e.store.FindTokenByID(e.ctx, keep.ID)
	must(t, "FindTokenByID(other token)", err)
	if got.RevokedAt != nil {
		t.Error("revoking one token revoked another")
	}
}

func testTokenTouch(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	other := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	minute := e.now.Truncate(time.Minute)

	lastUsed := func(id string) *time.Time {
		t.Helper()
		got, err := e.store.FindTokenByID(e.ctx, id)
		must(t, "FindTokenByID", err)
		return got.LastUsedAt
	}

	must(t, "TouchTokens with nothing", e.store.TouchTokens(e.ctx, nil))
	must(t, "TouchTokens", e.store.TouchTokens(e.ctx, map[string]time.Time{tok.ID: minute}))
	equal(t, "LastUsedAt after the first touch", lastUsed(tok.ID), &minute)
	if got := lastUsed(other.ID); got != nil {
		t.Errorf("untouched token has LastUsedAt %s", got)
	}

	must(t, "TouchTokens earlier", e.store.TouchTokens(e.ctx, map[string]time.Time{tok.ID: minute.Add(-5 * time.Minute)}))
	equal(t, "LastUsedAt after an earlier touch", lastUsed(tok.ID), &minute)

	later := minute.Add(2 * time.Minute)
	must(t, "TouchTokens later, with an unknown token", e.store.TouchTokens(e.ctx, map[string]time.Time{
		tok.ID:        later,
		other.ID:      minute,
		"tok_missing": later,
	}))
	equal(t, "LastUsedAt after a later touch", lastUsed(tok.ID), &later)
	equal(t, "LastUsedAt of the second token", lastUsed(other.ID), &minute)
}

var tokenLimitTests = []test{
	{"RefusesOverLimit", testTokenLimitRefuses},
	{"ZeroMeansUnlimited", testTokenLimitZero},
	{"RevokedAndExpiredDoNotCount", testTokenLimitInactive},
	{"PerOrganizationAndAPI", testTokenLimitScope},
	{"Concurrent", testTokenLimitConcurrent},
	{"ConcurrentAcrossHandles", testTokenLimitConcurrentHandles},
}

func testTokenLimitRefuses(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	for i := 0; i < 2; i++ {
		must(t, "CreateToken under the limit", e.store.CreateToken(e.ctx, e.newToken(org.ID, "cannmenus", e.now), 2))
	}
	third := e.newToken(org.ID, "cannmenus", e.now)
	err := e.store.CreateToken(e.ctx, third, 2)
	wantCode(t, "third CreateToken with limit 2", err, keygate.ECONFLICT)
	if got, want := keygate.ErrorMessage(err), keygate.TooManyTokensError(2).Message; got != want {
		t.Errorf("refusal message = %q, want %q", got, want)
	}
	_, err = e.store.FindTokenByHash(e.ctx, third.Hash)
	wantCode(t, "FindTokenByHash of the refused token", err, keygate.ENOTFOUND)

	// A higher limit (the organization's override) lets one more through.
	must(t, "CreateToken with limit 3", e.store.CreateToken(e.ctx, third, 3))
}

func testTokenLimitZero(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	for i := 0; i < 5; i++ {
		must(t, "CreateToken with no limit", e.store.CreateToken(e.ctx, e.newToken(org.ID, "canskan", e.now), 0))
	}
}

func testTokenLimitInactive(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	expired := e.newToken(org.ID, "cannmenus", e.at(-48*time.Hour))
	expired.ExpiresAt = ptr(e.at(-time.Second))
	must(t, "CreateToken(expired)", e.store.CreateToken(e.ctx, expired, 0))
	revoked := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, revoked.ID, e.now))
	active := e.newToken(org.ID, "cannmenus", e.now)
	active.ExpiresAt = ptr(e.at(time.Hour))
	must(t, "CreateToken(active)", e.store.CreateToken(e.ctx, active, 2))

	must(t, "CreateToken with one active, one expired and one revoked token",
		e.store.CreateToken(e.ctx, e.newToken(org.ID, "cannmenus", e.now), 2))
	wantCode(t, "CreateToken with two active tokens",
		e.store.CreateToken(e.ctx, e.newToken(org.ID, "cannmenus", e.now), 2), keygate.ECONFLICT)

	// Deleting one frees its place at once.
	must(t, "RevokeToken(active)", e.store.RevokeToken(e.ctx, active.ID, e.now))
	must(t, "CreateToken after a delete", e.store.CreateToken(e.ctx, e.newToken(org.ID, "cannmenus", e.now), 2))
}

func testTokenLimitScope(t *testing.T, e *env) {
	acme, globex := e.createOrganization("acme"), e.createOrganization("globex")
	for i := 0; i < 2; i++ {
		must(t, "CreateToken(acme, cannmenus)", e.store.CreateToken(e.ctx, e.newToken(acme.ID, "cannmenus", e.now), 2))
	}
	must(t, "CreateToken(acme, canskan)", e.store.CreateToken(e.ctx, e.newToken(acme.ID, "canskan", e.now), 2))
	must(t, "CreateToken(globex, cannmenus)", e.store.CreateToken(e.ctx, e.newToken(globex.ID, "cannmenus", e.now), 2))
	wantCode(t, "CreateToken(acme, cannmenus) over the limit",
		e.store.CreateToken(e.ctx, e.newToken(acme.ID, "cannmenus", e.now), 2), keygate.ECONFLICT)
}

func testTokenLimitConcurrent(t *testing.T, e *env) {
	createConcurrently(t, e, []keygate.Store{e.store})
}

func testTokenLimitConcurrentHandles(t *testing.T, e *env) {
	createConcurrently(t, e, []keygate.Store{e.store, e.open(), e.open()})
}

// createConcurrently races 20 creates with a limit of 2, spread over the
// given handles, and checks that exactly 2 pass and the rest are refused.
// A race is a matter of timing, so it runs several rounds, each for an
// organization of its own.
func createConcurrently(t *testing.T, e *env, stores []keygate.Store) {
	const rounds, attempts, limit = 10, 20, 2
	for round := range rounds {
		org := e.createOrganization(fmt.Sprintf("race-%d", round))
		errs := make([]error, attempts)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range attempts {
			tok := e.newToken(org.ID, "cannmenus", e.now)
			store := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				errs[i] = store.CreateToken(e.ctx, tok, limit)
			})
		}
		close(start)
		wg.Wait()

		created := 0
		for i, err := range errs {
			switch keygate.ErrorCode(err) {
			case "":
				created++
			case keygate.ECONFLICT:
			default:
				t.Errorf("round %d: create %d failed with %v, want success or ECONFLICT", round, i, err)
			}
		}
		tokens, err := e.store.ListTokens(e.ctx, keygate.TokenFilter{OrganizationID: org.ID})
		must(t, "ListTokens", err)
		if created != limit || len(tokens) != limit {
			t.Fatalf("round %d: %d of %d concurrent creates passed a limit of %d, %d tokens stored",
				round, created, attempts, limit, len(tokens))
		}
	}
}
