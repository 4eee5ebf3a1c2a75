package keygate_test

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

// The token format is a promise to secret scanners (GitHub, gitleaks,
// trufflehog) that match leaked tokens with a pattern and a checksum:
// <prefix><30 base62><6 base62 of CRC32>. These vectors are fixed strings,
// computed once outside keygate (Python's zlib.crc32 gives the same sums),
// so a change to the alphabet, the checksummed bytes or the padding fails
// here instead of silently breaking every scanner. docs/security.md spells
// out the algorithm they check.
var tokenVectors = []struct {
	token  string
	prefix string
	crc32  uint32 // of everything before the last 6 characters, prefix included
}{
	{"cm_live_0123456789ABCDEFGHIJKLMNOPQRST4Lk9xP", "cm_live_", 0xed9306e7},
	{"csk_test_abcdefghijklmnopqrstuvwxyzABCD1wsLok", "csk_test_", 0x6a75ef6e},
	{"cm_live_0000000000000000000000000000001x9rFC", "cm_live_", 0x6ab599ca},
	{"kg_live_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1IZ2OA", "kg_live_", 0x46f4f0ca},
}

func TestTokenFormatVectors(t *testing.T) {
	for _, v := range tokenVectors {
		if !keygate.WellFormedToken(v.token, v.prefix) {
			t.Errorf("%s: not well formed under %q", v.token, v.prefix)
		}
		body, sum := v.token[:len(v.token)-6], v.token[len(v.token)-6:]
		if got := crc32.ChecksumIEEE([]byte(body)); got != v.crc32 {
			t.Errorf("%s: CRC32 of %q is %#08x, vector says %#08x", v.token, body, got, v.crc32)
		}
		if got := referenceChecksum(body); got != sum {
			t.Errorf("%s: reference checksum %q, token ends %q", v.token, got, sum)
		}
		if len(body)-len(v.prefix) != 30 {
			t.Errorf("%s: %d random characters, want 30", v.token, len(body)-len(v.prefix))
		}
	}
}

// TestTokenChecksumPadding pins the two ends of the encoding: a CRC32 of
// 0 is "000000" and the largest, 0xffffffff, "4gfFC3", so every checksum
// is exactly 6 characters, most significant digit first, padded with '0'.
func TestTokenChecksumPadding(t *testing.T) {
	if got := base62Fixed6(0); got != "000000" {
		t.Errorf("0 encodes as %q", got)
	}
	if got := base62Fixed6(0xffffffff); got != "4gfFC3" {
		t.Errorf("0xffffffff encodes as %q", got)
	}
}

func TestGeneratedTokensFollowTheDocumentedAlgorithm(t *testing.T) {
	for _, prefix := range []string{"cm_live_", "csk_test_", "a_live_"} {
		for i := 0; i < 200; i++ {
			secret := keygate.GenerateTokenSecret(prefix)
			if !strings.HasPrefix(secret, prefix) || len(secret) != len(prefix)+36 {
				t.Fatalf("%q: wrong shape", secret)
			}
			random := secret[len(prefix) : len(secret)-6]
			if strings.Trim(random, base62) != "" {
				t.Fatalf("%q: random part is not base62", secret)
			}
			if want := referenceChecksum(secret[:len(secret)-6]); secret[len(secret)-6:] != want {
				t.Fatalf("%q: checksum %q, the documented algorithm gives %q", secret, secret[len(secret)-6:], want)
			}
		}
	}
}

func TestTokenChecksumRefusesEveryOneCharacterChange(t *testing.T) {
	for _, v := range tokenVectors {
		for i := len(v.prefix); i < len(v.token); i++ {
			for j := 0; j < len(base62); j++ {
				if base62[j] == v.token[i] {
					continue
				}
				changed := v.token[:i] + string(base62[j]) + v.token[i+1:]
				if keygate.WellFormedToken(changed, v.prefix) {
					t.Fatalf("%s: changing position %d to %q still passes the checksum", v.token, i, base62[j])
				}
			}
		}
	}
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// referenceChecksum is the algorithm as docs/security.md states it, written
// independently of keygate's own: CRC-32 (IEEE 802.3, the zlib/PNG
// polynomial) of the UTF-8 bytes of prefix and random part, written in
// base62 with the alphabet 0-9A-Za-z, most significant digit first,
// left-padded with '0' to 6 characters.
func referenceChecksum(body string) string {
	return base62Fixed6(crc32.ChecksumIEEE([]byte(body)))
}

func base62Fixed6(n uint32) string {
	out := []byte("000000")
	v := uint64(n)
	for i := 5; v > 0; i-- {
		out[i] = base62[v%62]
		v /= 62
	}
	return string(out)
}

// Stored tokens are found by this hash: it must stay the hex SHA-256 of
// the whole secret, for secrets of any length.
func TestHashTokenIsHexSHA256(t *testing.T) {
	for _, secret := range []string{
		"cm_live_0123456789ABCDEFGHIJKLMNOPQRST4Lk9xP",
		"",
		strings.Repeat("x", 300),
	} {
		sum := sha256.Sum256([]byte(secret))
		if got, want := keygate.HashToken(secret), hex.EncodeToString(sum[:]); got != want {
			t.Errorf("HashToken of %d bytes = %s, want %s", len(secret), got, want)
		}
	}
	const known = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // sha256("test")
	if got := keygate.HashToken("test"); got != known {
		t.Errorf("HashToken(test) = %s", got)
	}
}

// The gateway looks tokens up by digest: a digest must name exactly the
// stored hash HashToken makes, and accept a rotated token's secrets as
// AcceptsHash does.
func TestTokenDigestIsTheStoredHash(t *testing.T) {
	const known = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // sha256("test")
	d := keygate.DigestToken("test")
	if d.String() != known || !d.Is(known) {
		t.Fatalf("DigestToken(test) = %s", d)
	}
	for _, other := range []string{strings.ToUpper(known), known[:63], known + "0", keygate.HashToken("tesT"), ""} {
		if d.Is(other) {
			t.Errorf("DigestToken(test).Is(%q) = true", other)
		}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	graceEnds := now.Add(time.Hour)
	tok := &keygate.Token{Hash: keygate.HashToken("new"), PreviousHash: keygate.HashToken("old"), PreviousHashExpiresAt: &graceEnds}
	for _, c := range []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{"new", now, true}, {"new", graceEnds.Add(time.Hour), true},
		{"old", now, true}, {"old", graceEnds, false},
		{"other", now, false},
	} {
		byHash, byDigest := tok.AcceptsHash(keygate.HashToken(c.secret), c.at), tok.AcceptsDigest(keygate.DigestToken(c.secret), c.at)
		if byHash != c.want || byDigest != c.want {
			t.Errorf("secret %q at %s: AcceptsHash %v, AcceptsDigest %v, want %v", c.secret, c.at, byHash, byDigest, c.want)
		}
	}
}
