package gateway

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// checkEntitlementsInQuery must answer exactly as checkEntitlements over
// url.ParseQuery wherever it decides: the same refusal, naming the same
// value, or none. Queries are built from the pieces that make parsing
// differ: spellings of the names, escapes good and bad, separators,
// empty pairs and lists.
func TestEntitlementsReadFromTheRawQueryAnswerAsParsed(t *testing.T) {
	route := &keygate.Route{Entitlements: map[string]string{keygate.EntitlementStates: "states", keygate.EntitlementBrands: "brands"}}
	ent := keygate.Entitlements{States: []string{"California", "Colorado"}, Brands: []string{"Acme"}}
	pieces := []string{
		"states", "States", "STATES", "st%61tes", "states[]", "states%5B0%5D", "brands", "Brands[]", "page", "",
		"=", "=", "&", "&", ";", "%", "%zz", "%20", "+", ",", ", ",
		"California", "california", "Texas", "Oregon", "Acme", "Acme%20Co", "Colo%72ado", "%E2%82%AC",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	decided := 0
	for range 50000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		raw := b.String()
		got, ok := checkEntitlementsInQuery(route, ent, raw)
		query, perr := url.ParseQuery(raw)
		if !ok {
			continue
		}
		decided++
		if perr != nil {
			t.Fatalf("?%s: decided, though url.ParseQuery fails (%v)", raw, perr)
		}
		want := checkEntitlements(route, ent, query)
		if keygate.ErrorCode(got) != keygate.ErrorCode(want) || (got != nil && got.Error() != want.Error()) {
			t.Fatalf("?%s: read from the raw query %v, parsed %v", raw, got, want)
		}
	}
	if decided < 10000 {
		t.Errorf("only %d of 50000 queries decided without parsing", decided)
	}
}
