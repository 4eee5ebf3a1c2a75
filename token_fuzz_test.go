package keygate_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// FuzzWellFormedToken checks WellFormedToken against the documented format
// on arbitrary input: it accepts exactly the strings that are a prefix, 30
// base62 characters and the reference checksum, so what the gateway lets
// through to storage is what scanners would match, and nothing else.
func FuzzWellFormedToken(f *testing.F) {
	for _, v := range tokenVectors {
		f.Add(v.token, v.prefix)
		f.Add(v.token[:len(v.token)-1]+"x", v.prefix)
		f.Add(" "+v.token, v.prefix)
		f.Add(v.token+"\n", v.prefix)
	}
	f.Add("cm_live_0123456789ABCDEFGHIJKLMNOPQRST4Lk9xP", "cm_test_")
	f.Add("cm_live_0123456789ABCDEFGHIJ\x00LMNOPQRST4Lk9xP", "cm_live_")
	f.Add("cm_live_0123456789ABCDEFGHIJKLMNOPQRSTé4Lk9", "cm_live_")
	f.Add("", "")
	f.Add(strings.Repeat("0", 36), "")
	f.Fuzz(func(t *testing.T, secret, prefix string) {
		got := keygate.WellFormedToken(secret, prefix)
		if got != documentedWellFormed(secret, prefix) {
			t.Fatalf("WellFormedToken(%q, %q) = %v, the documented format says %v", secret, prefix, got, !got)
		}
		if got && len(secret) != len(prefix)+36 {
			t.Fatalf("accepted %q of length %d", secret, len(secret))
		}
	})
}

// FuzzTokenRoundTrip builds a token from arbitrary random characters with
// the reference checksum and checks that it is accepted, and that changing
// any one character after the prefix gets it refused.
func FuzzTokenRoundTrip(f *testing.F) {
	f.Add([]byte("0123456789ABCDEFGHIJKLMNOPQRST"), uint8(0), uint8(1))
	f.Add([]byte{}, uint8(35), uint8(61))
	f.Add([]byte{0xff, 0x00, 0x80}, uint8(17), uint8(30))
	f.Fuzz(func(t *testing.T, seed []byte, at, delta uint8) {
		const prefix = "kg_live_"
		random := make([]byte, 30)
		for i := range random {
			var b byte
			if i < len(seed) {
				b = seed[i]
			}
			random[i] = base62[int(b)%62]
		}
		body := prefix + string(random)
		token := body + referenceChecksum(body)
		if !keygate.WellFormedToken(token, prefix) {
			t.Fatalf("%q: built by the documented algorithm but refused", token)
		}
		if !keygate.WellFormedToken(token, "other_", prefix) {
			t.Fatalf("%q: refused when its prefix is the second one offered", token)
		}
		i := len(prefix) + int(at)%36
		j := (strings.IndexByte(base62, token[i]) + 1 + int(delta)%61) % 62
		changed := token[:i] + string(base62[j]) + token[i+1:]
		if keygate.WellFormedToken(changed, prefix) {
			t.Fatalf("%q: one character changed from %q and still accepted", changed, token)
		}
	})
}

// documentedWellFormed is the format of docs/security.md, independently:
// the prefix, then exactly 36 base62 characters, the last 6 of which are
// the checksum of everything before them.
func documentedWellFormed(secret, prefix string) bool {
	tail, ok := strings.CutPrefix(secret, prefix)
	if !ok || len(tail) != 36 {
		return false
	}
	for i := 0; i < len(tail); i++ {
		if strings.IndexByte(base62, tail[i]) < 0 {
			return false
		}
	}
	return referenceChecksum(secret[:len(secret)-6]) == secret[len(secret)-6:]
}
