package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var rotationTests = []test{
	{"KeepsTheTokenAndTheOldSecretForTheGrace", testRotateKeepsToken},
	{"SecondRotationDropsTheFirstOldSecret", testRotateTwice},
	{"DeletedOrExpiredRefused", testRotateRefused},
	{"AtTheTokenLimit", testRotateAtLimit},
	{"PublishesAChange", testRotatePublishes},
	{"ConcurrentWithDelete", testRotateConcurrentWithDelete},
}

// rotation returns a rotation of tok to a made-up secret at at, the old
// secret kept for grace.
func (e *env) rotation(tok *keygate.Token, at time.Time, grace time.Duration) keygate.TokenRotation {
	id := keygate.NewID("secret")
	return keygate.TokenRotation{
		TokenID: tok.ID, Hash: keygate.HashToken(id), Hint: "cm_live_…" + id[len(id)-4:],
		At: at, PreviousHashExpiresAt: at.Add(grace),
	}
}

func testRotateKeepsToken(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	tok.LastUsedAt = ptr(e.now.Truncate(time.Minute))
	must(t, "TouchTokens", e.store.TouchTokens(e.ctx, map[string]time.Time{tok.ID: *tok.LastUsedAt}))
	rot := e.rotation(tok, e.now, time.Hour)

	got, err := e.store.RotateToken(e.ctx, rot)
	must(t, "RotateToken", err)
	want := *tok
	want.PreviousHash, want.PreviousHashExpiresAt = tok.Hash, ptr(e.at(time.Hour))
	want.Hash, want.Hint, want.RotatedAt = rot.Hash, rot.Hint, ptr(e.now)
	equal(t, "RotateToken's token", got, &want)

	byNew, err := e.store.FindTokenByHash(e.ctx, rot.Hash)
	must(t, "FindTokenByHash(new secret)", err)
	equal(t, "FindTokenByHash(new secret)", byNew, &want)
	byOld, err := e.store.FindTokenByHash(e.ctx, tok.Hash)
	must(t, "FindTokenByHash(old secret)", err)
	equal(t, "FindTokenByHash(old secret)", byOld, &want)
	byID, err := e.store.FindTokenByID(e.ctx, tok.ID)
	must(t, "FindTokenByID", err)
	equal(t, "FindTokenByID", byID, &want)

	if !byOld.AcceptsHash(tok.Hash, e.at(time.Hour-time.Millisecond)) || byOld.AcceptsHash(tok.Hash, e.at(time.Hour)) {
		t.Error("the old secret must work until the grace ends and not from then on")
	}
	if !byOld.AcceptsHash(rot.Hash, e.at(24*time.Hour)) {
		t.Error("the new secret must keep working")
	}
	list, err := e.store.ListTokens(e.ctx, keygate.TokenFilter{OrganizationID: org.ID})
	must(t, "ListTokens", err)
	if len(list) != 1 || list[0].ID != tok.ID {
		t.Errorf("ListTokens after a rotation = %d tokens, want the one rotated token", len(list))
	}
}

func testRotateTwice(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	first := e.rotation(tok, e.at(-time.Minute), 24*time.Hour)
	_, err := e.store.RotateToken(e.ctx, first)
	must(t, "RotateToken", err)
	second := e.rotation(tok, e.now, time.Hour)
	got, err := e.store.RotateToken(e.ctx, second)
	must(t, "RotateToken again", err)
	if got.PreviousHash != first.Hash || got.Hash != second.Hash {
		t.Errorf("after two rotations: hash %s, previous %s; want the second's and the first's", got.Hash, got.PreviousHash)
	}
	_, err = e.store.FindTokenByHash(e.ctx, tok.Hash)
	wantCode(t, "FindTokenByHash(the secret before the first rotation)", err, keygate.ENOTFOUND)
}

func testRotateRefused(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	deleted := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
	must(t, "RevokeToken", e.store.RevokeToken(e.ctx, deleted.ID, e.at(-time.Minute)))
	expired := e.newToken(org.ID, "cannmenus", e.at(-time.Hour))
	expired.ExpiresAt = ptr(e.at(-time.Second))
	must(t, "CreateToken", e.store.CreateToken(e.ctx, expired, 0))

	_, err := e.store.RotateToken(e.ctx, e.rotation(deleted, e.now, time.Hour))
	wantCode(t, "RotateToken(deleted)", err, keygate.ENOTFOUND)
	_, err = e.store.RotateToken(e.ctx, e.rotation(expired, e.now, time.Hour))
	wantCode(t, "RotateToken(expired)", err, keygate.ECONFLICT)
	_, err = e.store.RotateToken(e.ctx, e.rotation(&keygate.Token{ID: "tok_missing"}, e.now, time.Hour))
	wantCode(t, "RotateToken(unknown)", err, keygate.ENOTFOUND)

	for _, tok := range []*keygate.Token{deleted, expired} {
		got, err := e.store.FindTokenByHash(e.ctx, tok.Hash)
		must(t, "FindTokenByHash after a refused rotation", err)
		if got.RotatedAt != nil || got.PreviousHash != "" {
			t.Errorf("refused rotation changed token %s", tok.ID)
		}
	}
}

// A rotated token counts once against the limit, old secret or not, so an
// organization at its limit can rotate and still cannot create another.
func testRotateAtLimit(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.newToken(org.ID, "cannmenus", e.at(-time.Hour))
	must(t, "CreateToken", e.store.CreateToken(e.ctx, tok, 2))
	must(t, "CreateToken", e.store.CreateToken(e.ctx, e.newToken(org.ID, "cannmenus", e.at(-time.Hour)), 2))

	_, err := e.store.RotateToken(e.ctx, e.rotation(tok, e.now, 7*24*time.Hour))
	must(t, "RotateToken at the limit", err)
	err = e.store.CreateToken(e.ctx, e.newToken(org.ID, "cannmenus", e.now), 2)
	wantCode(t, "CreateToken at the limit after a rotation", err, keygate.ECONFLICT)
}

func testRotatePublishes(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	tok := e.createToken(org.ID, "cannmenus", e.now)
	other := e.open()
	w := e.watch(e.store, other)
	_, err := other.RotateToken(e.ctx, e.rotation(tok, e.now, 0))
	must(t, "RotateToken through another handle", err)
	_, err = other.RotateToken(e.ctx, e.rotation(&keygate.Token{ID: "tok_missing"}, e.now, 0))
	wantCode(t, "RotateToken(unknown)", err, keygate.ENOTFOUND)
	equal(t, "changes of RotateToken", w.sync(), []keygate.Change{{Kind: keygate.ChangeToken, ID: tok.ID}})
}

// testRotateConcurrentWithDelete races rotations against a delete through
// separate handles: whatever the order, the token ends up deleted, no
// secret any rotation returned (nor the first) still belongs to an
// undeleted token, and every rotation either succeeded or found the token
// deleted.
func testRotateConcurrentWithDelete(t *testing.T, e *env) {
	org := e.createOrganization("acme")
	const rounds, rotators = 5, 3
	handles := make([]keygate.Store, rotators+1)
	for i := range handles {
		handles[i] = e.open()
	}
	for range rounds {
		tok := e.createToken(org.ID, "cannmenus", e.at(-time.Hour))
		rots := make([]keygate.TokenRotation, rotators)
		errs := make([]error, rotators)
		var wg sync.WaitGroup
		for i := range rotators {
			rots[i] = e.rotation(tok, e.now, time.Hour)
			wg.Go(func() { _, errs[i] = handles[i].RotateToken(e.ctx, rots[i]) })
		}
		var revokeErr error
		wg.Go(func() { revokeErr = handles[rotators].RevokeToken(e.ctx, tok.ID, e.now) })
		wg.Wait()
		must(t, "RevokeToken racing rotations", revokeErr)
		for i, err := range errs {
			if err != nil {
				wantCode(t, "RotateToken racing a delete", err, keygate.ENOTFOUND)
				continue
			}
			got, err := e.store.FindTokenByHash(e.ctx, rots[i].Hash)
			if keygate.ErrorCode(err) == keygate.ENOTFOUND {
				continue // a later rotation replaced it twice over
			}
			must(t, "FindTokenByHash(rotated secret)", err)
			if got.RevokedAt == nil {
				t.Fatalf("a rotation racing a delete left secret of token %s working", tok.ID)
			}
		}
		got, err := e.store.FindTokenByID(e.ctx, tok.ID)
		must(t, "FindTokenByID", err)
		if got.RevokedAt == nil {
			t.Fatal("token not deleted after racing rotations")
		}
	}
}
