package keygate_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// ASCII letters fold; nothing else does: not the bytes 0x20 apart that are
// not letters, and not the Unicode letters strings.EqualFold folds to
// ASCII ones.
func TestEqualFoldASCII(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"chunked", "CHUNKED", true},
		{"X-RateLimit-Limit", "x-ratelimit-limit", true},
		{"California", "california", true},
		{"", "", true},
		{"@[\\]^", "`{|}~", false},
		{"chunked", "chunke", false},
		{"\u212aansas", "kansas", false},
		{"tran\u017ffer", "transfer", false},
	} {
		if got := keygate.EqualFoldASCII(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := keygate.EqualFoldASCII(tc.b, tc.a); got != tc.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
		if strings.ContainsFunc(tc.a, func(r rune) bool { return r >= 0x80 }) && !strings.EqualFold(tc.a, tc.b) {
			t.Errorf("strings.EqualFold(%q, %q) = false: not a case where Unicode folding differs", tc.a, tc.b)
		}
	}
}
