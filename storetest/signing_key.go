package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var signingKeyTests = []test{
	{"FirstKeyStays", testSigningKeyFirstStays},
	{"ConcurrentCallersAgree", testSigningKeyConcurrent},
}

func newSigningKey(id string, createdAt time.Time) *keygate.SigningKey {
	seed := bytes.Repeat([]byte(id[len(id)-1:]), 32)
	return &keygate.SigningKey{ID: id, PrivateKey: seed, CreatedAt: createdAt}
}

func testSigningKeyFirstStays(t *testing.T, e *env) {
	first := newSigningKey("key_1", e.now)
	got, err := e.store.SigningKey(e.ctx, first)
	must(t, "SigningKey on an empty store", err)
	equal(t, "first SigningKey", got, first)

	got, err = e.store.SigningKey(e.ctx, newSigningKey("key_2", e.at(time.Hour)))
	must(t, "SigningKey with another key", err)
	equal(t, "second SigningKey", got, first)

	got, err = e.open().SigningKey(e.ctx, newSigningKey("key_3", e.at(time.Hour)))
	must(t, "SigningKey through another handle", err)
	equal(t, "SigningKey through another handle", got, first)
}

func testSigningKeyConcurrent(t *testing.T, e *env) {
	stores := []keygate.Store{e.store, e.open()}
	const callers = 10
	keys := make([]*keygate.SigningKey, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		candidate := newSigningKey("key_"+string(rune('a'+i)), e.now)
		store := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			keys[i], errs[i] = store.SigningKey(e.ctx, candidate)
		})
	}
	close(start)
	wg.Wait()
	for i := range callers {
		must(t, "SigningKey", errs[i])
		equal(t, "key of a concurrent caller", keys[i], keys[0])
	}
}
