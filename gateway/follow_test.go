package gateway_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/sqlite"
)

// lateFeed is a store's change feed that reads where it begins only once
// start is closed, as a feed whose first query waits on a busy database
// (or a goroutine not yet scheduled) does.
type lateFeed struct {
	keygate.ChangeFeed
	start chan struct{}
}

func (f *lateFeed) WatchChanges(ctx context.Context, following func(bool), fn func(keygate.Change)) error {
	select {
	case <-f.start:
	case <-ctx.Done():
		return nil
	}
	return f.ChangeFeed.WatchChanges(ctx, following, fn)
}

// followLate makes tokens follow st's changes through a lateFeed and
// returns the function that lets the feed begin.
func followLate(t *testing.T, tokens *gateway.Tokens, st keygate.ChangeFeed) (begin func()) {
	t.Helper()
	feed := &lateFeed{ChangeFeed: st, start: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	followed := tokens.Follow(ctx, feed)
	t.Cleanup(func() { cancel(); <-followed })
	return func() {
		close(feed.start)
		waitUntilFollowing(t, tokens)
	}
}

// A token looked up while the feed has not yet read where it begins, then
// revoked before it does: the feed never delivers that revocation (it was
// committed before the feed's start), so the cache must not have kept the
// token.
func TestTokenReadBeforeTheFeedBeginsIsNotKept(t *testing.T) {
	st, org := newStallingStore(t)
	hash := createToken(t, st.Store, org)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{})
	begin := followLate(t, tokens, st.Store)
	ctx := context.Background()

	tok, _, err := tokens.Lookup(ctx, hash)
	if err != nil || tok.RevokedAt != nil {
		t.Fatalf("Lookup before the revocation = %+v, %v; want the active token", tok, err)
	}
	if err := st.RevokeToken(ctx, tok.ID, tok.CreatedAt); err != nil {
		t.Fatal(err)
	}
	begin()
	if tok, _, err := tokens.Lookup(ctx, hash); err != nil || tok.RevokedAt == nil {
		t.Fatalf("Lookup after the revocation = %+v, %v; want the revoked token", tok, err)
	}
}

// readThenWait answers a token lookup with what the store said when asked,
// but only once released: a read that began before a revocation and ends
// after it.
// Only the first lookup waits.
type readThenWait struct {
	*sqlite.Store
	read    chan struct{}
	release chan struct{}
	waited  atomic.Bool
}

func (s *readThenWait) FindTokenByHash(ctx context.Context, hash string) (*keygate.Token, error) {
	tok, err := s.Store.FindTokenByHash(ctx, hash)
	if s.waited.CompareAndSwap(false, true) {
		close(s.read)
		<-s.release
	}
	return tok, err
}

// newReadThenWait is a store with one active token, whose first lookup
// waits; it returns the token's digest.
func newReadThenWait(t *testing.T) (*readThenWait, keygate.TokenDigest) {
	t.Helper()
	sst, org := newStallingStore(t)
	hash := createToken(t, sst.Store, org)
	return &readThenWait{Store: sst.Store, read: make(chan struct{}), release: make(chan struct{})}, hash
}

// lookupReadBeforeRevoking starts a lookup of hash through tokens, waits
// until it has read the token from st, then revokes the token in st
// itself, behind the cache: nothing tells tokens. The lookup's answer
// comes on the channel once st.release is closed; the revoked token is
// returned.
func lookupReadBeforeRevoking(t *testing.T, tokens *gateway.Tokens, st *readThenWait, hash keygate.TokenDigest) (answer <-chan lookupAnswer, revoked *keygate.Token) {
	t.Helper()
	ctx := context.Background()
	first := make(chan lookupAnswer, 1)
	go func() {
		tok, _, err := tokens.Lookup(ctx, hash)
		first <- lookupAnswer{tok, err}
	}()
	<-st.read
	tok, err := st.Store.FindTokenByHash(ctx, hash.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, tok.ID, tok.CreatedAt); err != nil {
		t.Fatal(err)
	}
	return first, tok
}

type lookupAnswer struct {
	tok *keygate.Token
	err error
}

// A lookup that read the token before the feed began, and answers after
// the feed began, is not kept either: the revocation committed in between
// is before the feed's start.
func TestTokenReadAcrossTheFeedsBeginningIsNotKept(t *testing.T) {
	st, hash := newReadThenWait(t)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{})
	begin := followLate(t, tokens, st.Store)
	ctx := context.Background()

	first, _ := lookupReadBeforeRevoking(t, tokens, st, hash)
	begin()
	close(st.release)
	if got := <-first; got.err != nil || got.tok == nil || got.tok.RevokedAt != nil {
		t.Fatalf("the lookup that read before the revocation answered %+v, %v; want the active token it read", got.tok, got.err)
	}
	if tok, _, err := tokens.Lookup(ctx, hash); err != nil || tok.RevokedAt == nil {
		t.Fatalf("Lookup after the revocation = %+v, %v; want the revoked token", tok, err)
	}
}

// A lookup that starts after this instance applied a revocation does not
// take the answer of a read that began before it: that read may have seen
// the token active.
func TestLookupAfterAnInvalidationDoesNotShareAnEarlierRead(t *testing.T) {
	st, hash := newReadThenWait(t)
	tokens := gateway.NewTokens(st, gateway.TokensOptions{})
	ctx := context.Background()

	// The store timeout may end the first lookup: its answer is not
	// judged.
	first, tok := lookupReadBeforeRevoking(t, tokens, st, hash)
	tokens.Apply(keygate.Change{Kind: keygate.ChangeToken, ID: tok.ID})
	second := make(chan *keygate.Token, 1)
	go func() {
		tok, _, err := tokens.Lookup(ctx, hash)
		if err != nil {
			t.Errorf("Lookup after the revocation: %v", err)
		}
		second <- tok
	}()
	// Had it joined the read that began before the revocation, it would
	// wait for that read until the store timeout.
	after := <-second
	close(st.release)
	<-first
	if after == nil || after.RevokedAt == nil {
		t.Fatalf("a lookup that began after the revocation was applied answered %+v; want the revoked token", after)
	}
}
