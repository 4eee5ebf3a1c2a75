package ratelimit_test

import (
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/ratelimit"
)

// FuzzParseMode reads arbitrary rate_limiter.fallback values from config:
// only the three modes' names, spelled exactly, are taken ("" is local);
// anything else is an EINVALID error, never a mode.
func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"", "local", "shared-split", "closed", "Closed", "closed ", "split", "local\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mode, err := ratelimit.ParseMode(s)
		switch s {
		case "", "local":
			if err != nil || mode != ratelimit.ModeLocal {
				t.Fatalf("ParseMode(%q) = %q, %v; want local", s, mode, err)
			}
		case "shared-split", "closed":
			if err != nil || string(mode) != s {
				t.Fatalf("ParseMode(%q) = %q, %v", s, mode, err)
			}
		default:
			if err == nil || mode != "" || keygate.ErrorCode(err) != keygate.EINVALID {
				t.Fatalf("ParseMode(%q) = %q, %v; want an EINVALID error", s, mode, err)
			}
		}
	})
}
