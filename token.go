package keygate

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"math/big"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Token is an API token as stored: never the secret itself, only its SHA-256
// hash and a display hint. The secret exists only in the value returned by
// NewToken, shown to its creator once.
type Token struct {
	ID             string
	OrganizationID string
	API            string // name of the API the token belongs to
	Name           string
	Scopes         []string
	Environment    string // "live" or "test"
	Hash           string // hex SHA-256 of the whole token
	Hint           string // prefix + "…" + last 4 characters
	CreatedAt      time.Time
	CreatedBy      string // user id, or "cli"/"admin-key:<id>" for automation
	LastUsedAt     *time.Time
	ExpiresAt      *time.Time // nil: never expires
	RevokedAt      *time.Time
	// RotatedAt is when the secret was last replaced (RotateToken); nil
	// when it never was. The token keeps its id, so its usage history,
	// last use and limits stay with it.
	RotatedAt *time.Time
	// PreviousHash is the hash of the secret the last rotation replaced,
	// still accepted until PreviousHashExpiresAt so clients can switch to
	// the new secret without downtime. "" when never rotated.
	PreviousHash          string
	PreviousHashExpiresAt *time.Time
}

// AcceptsHash reports whether hash is one of the token's working secrets
// at now: the current one, or the one the last rotation replaced while its
// grace period lasts. Revocation and expiry are checked separately.
func (t *Token) AcceptsHash(hash string, now time.Time) bool {
	return t.accepts(func(h string) bool { return h == hash }, now)
}

// AcceptsDigest is AcceptsHash for a digest: the gateway holds a request's
// token as its TokenDigest and needs no hex of it to decide.
func (t *Token) AcceptsDigest(d TokenDigest, now time.Time) bool {
	return t.accepts(d.Is, now)
}

// accepts is AcceptsHash with is telling whether a stored hash is the one
// presented.
func (t *Token) accepts(is func(hash string) bool, now time.Time) bool {
	if is(t.Hash) {
		return true
	}
	return t.PreviousHash != "" && is(t.PreviousHash) &&
		t.PreviousHashExpiresAt != nil && now.Before(*t.PreviousHashExpiresAt)
}

// Active reports whether the token is neither revoked nor expired at now.
// Active tokens are the ones that count against an organization's limit.
func (t *Token) Active(now time.Time) bool {
	return t.RevokedAt == nil && !t.Expired(now)
}

// Expired reports whether the token's expiry has passed at now.
func (t *Token) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// HasScopes reports whether the token carries every scope in required.
func (t *Token) HasScopes(required []string) bool {
	return HasAll(t.Scopes, required)
}

// HasAll reports whether have contains every element of want.
func HasAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Token environments: part of the token prefix so a leaked token says where
// it came from.
const (
	EnvironmentLive = "live"
	EnvironmentTest = "test"
)

const (
	tokenRandomLength   = 30
	tokenChecksumLength = 6
	base62Alphabet      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// MaxTokenLength bounds what the gateway reads from a header before
	// giving up: a prefix of up to 32 characters plus the fixed tail.
	MaxTokenLength = 32 + tokenRandomLength + tokenChecksumLength
	// MaxTokenNameLength is the longest token name accepted.
	MaxTokenNameLength = 100
)

// TokenPrefix returns the prefix of tokens for an API base prefix and an
// environment: "cm_" and "live" give "cm_live_".
func TokenPrefix(base, environment string) string {
	return base + environment + "_"
}

// GenerateTokenSecret returns a new token: prefix, 30 random base62
// characters, and 6 base62 characters of the CRC32 of what precedes them.
func GenerateTokenSecret(prefix string) string {
	var b strings.Builder
	b.Grow(len(prefix) + tokenRandomLength + tokenChecksumLength)
	b.WriteString(prefix)
	max := big.NewInt(int64(len(base62Alphabet)))
	for i := 0; i < tokenRandomLength; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("keygate: crypto/rand failed: " + err.Error())
		}
		b.WriteByte(base62Alphabet[n.Int64()])
	}
	b.WriteString(tokenChecksum(b.String()))
	return b.String()
}

// tokenChecksum encodes the CRC32 (IEEE) of s as 6 base62 characters,
// zero-padded, so checksums have a fixed width.
func tokenChecksum(s string) string {
	out := tokenChecksumBytes(s)
	return string(out[:])
}

// tokenChecksumBytes is tokenChecksum without a string to allocate: every
// request checks one. The CRC is computed from crc32's table over the
// string itself, since handing crc32 a []byte copy of s would allocate.
func tokenChecksumBytes(s string) [tokenChecksumLength]byte {
	crc := ^uint32(0)
	for i := 0; i < len(s); i++ {
		crc = crc32.IEEETable[byte(crc)^s[i]] ^ (crc >> 8)
	}
	sum := uint64(^crc)
	var out [tokenChecksumLength]byte
	for i := tokenChecksumLength - 1; i >= 0; i-- {
		out[i] = base62Alphabet[sum%62]
		sum /= 62
	}
	return out
}

// WellFormedToken reports whether secret has one of the given prefixes, the
// exact length, only base62 characters after the prefix and a valid checksum.
// It touches no storage, so malformed guesses cost nothing.
func WellFormedToken(secret string, prefixes ...string) bool {
	for _, prefix := range prefixes {
		if !strings.HasPrefix(secret, prefix) {
			continue
		}
		tail := secret[len(prefix):]
		if len(tail) != tokenRandomLength+tokenChecksumLength {
			return false
		}
		for i := 0; i < len(tail); i++ {
			if c := tail[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') { // base62Alphabet
				return false
			}
		}
		body := secret[:len(secret)-tokenChecksumLength]
		sum := tokenChecksumBytes(body)
		return string(sum[:]) == secret[len(secret)-tokenChecksumLength:]
	}
	return false
}

// HashToken returns the hex SHA-256 of the whole token, the only form in
// which a token is stored.
func HashToken(secret string) string {
	return DigestToken(secret).String()
}

// TokenDigest is the SHA-256 of a whole token: the form the gateway's
// token cache is keyed by, 32 bytes compared and hashed in place where
// the hex (String, the stored form) would be 64 more bytes behind a
// pointer.
type TokenDigest [sha256.Size]byte

// DigestToken returns the SHA-256 of the whole token.
func DigestToken(secret string) TokenDigest {
	// A token fits the stack buffer: []byte(secret) alone would copy
	// anything past 32 bytes to the heap, once per request.
	var buf [128]byte
	return sha256.Sum256(append(buf[:0], secret...))
}

// String returns the digest in hex, as HashToken does and the stores keep it.
func (d TokenDigest) String() string {
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], d[:])
	return string(out[:])
}

// Is reports whether hash is d's hex form (HashToken's), without making one.
func (d TokenDigest) Is(hash string) bool {
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], d[:])
	return string(out[:]) == hash
}

// TokenHint returns the display form of a token: its prefix and last four
// characters, enough to recognise it and useless to an attacker.
func TokenHint(prefix, secret string) string {
	return prefix + "…" + secret[len(secret)-4:]
}

// ExpiryChoice is one of the fixed expirations offered when creating a token.
type ExpiryChoice string

const (
	Expiry7Days   ExpiryChoice = "7d"
	Expiry30Days  ExpiryChoice = "30d"
	Expiry90Days  ExpiryChoice = "90d"
	Expiry1Year   ExpiryChoice = "1y"
	ExpiryNever   ExpiryChoice = "never"
	DefaultExpiry              = Expiry90Days
)

// ExpiryChoices lists the choices in the order forms show them.
var ExpiryChoices = []ExpiryChoice{Expiry7Days, Expiry30Days, Expiry90Days, Expiry1Year, ExpiryNever}

// Label returns the words a person reads for the choice.
func (c ExpiryChoice) Label() string {
	switch c {
	case Expiry7Days:
		return "7 days"
	case Expiry30Days:
		return "30 days"
	case Expiry90Days:
		return "90 days"
	case Expiry1Year:
		return "1 year"
	case ExpiryNever:
		return "Never"
	}
	return string(c)
}

// ExpiresAt returns when a token created at now with this choice expires,
// nil for never.
func (c ExpiryChoice) ExpiresAt(now time.Time) (*time.Time, error) {
	var d time.Duration
	switch c {
	case Expiry7Days:
		d = 7 * 24 * time.Hour
	case Expiry30Days:
		d = 30 * 24 * time.Hour
	case Expiry90Days, "":
		d = 90 * 24 * time.Hour
	case Expiry1Year:
		d = 365 * 24 * time.Hour
	case ExpiryNever:
		return nil, nil
	default:
		return nil, Errorf(EINVALID, "Unknown expiration %q: choose one of 7d, 30d, 90d, 1y, never.", string(c))
	}
	t := now.Add(d)
	return &t, nil
}

// RotationGrace is how long a rotated token's old secret keeps working,
// one of a fixed set of choices like the expiry.
type RotationGrace string

const (
	GraceNone    RotationGrace = "0"
	Grace1Hour   RotationGrace = "1h"
	Grace24Hours RotationGrace = "24h"
	Grace7Days   RotationGrace = "7d"
)

// RotationGraces lists the choices in the order forms show them.
var RotationGraces = []RotationGrace{GraceNone, Grace1Hour, Grace24Hours, Grace7Days}

// Label returns the words a person reads for the choice.
func (g RotationGrace) Label() string {
	switch g {
	case GraceNone:
		return "None: the old secret stops working now"
	case Grace1Hour:
		return "1 hour"
	case Grace24Hours:
		return "24 hours"
	case Grace7Days:
		return "7 days"
	}
	return string(g)
}

// Duration returns how long the old secret keeps working; EINVALID for a
// value that is not one of RotationGraces.
func (g RotationGrace) Duration() (time.Duration, error) {
	switch g {
	case GraceNone:
		return 0, nil
	case Grace1Hour:
		return time.Hour, nil
	case Grace24Hours:
		return 24 * time.Hour, nil
	case Grace7Days:
		return 7 * 24 * time.Hour, nil
	}
	return 0, Errorf(EINVALID, "Unknown grace period %q: choose one of 0, 1h, 24h, 7d.", string(g))
}

// TokenRotation replaces a token's secret: Hash and Hint are the new
// secret's; the old secret keeps working until PreviousHashExpiresAt
// (At for no grace).
type TokenRotation struct {
	TokenID               string
	Hash, Hint            string
	At                    time.Time
	PreviousHashExpiresAt time.Time
}

// NewTokenSecret returns a new secret for an existing token, with the
// prefix its API and environment give, and the rotation that stores it.
func NewTokenSecret(policy TokenPolicy, tok *Token, grace RotationGrace, now time.Time) (TokenRotation, string, error) {
	d, err := grace.Duration()
	if err != nil {
		return TokenRotation{}, "", err
	}
	prefix := TokenPrefix(policy.BasePrefix, tok.Environment)
	secret := GenerateTokenSecret(prefix)
	now = now.UTC()
	return TokenRotation{
		TokenID:               tok.ID,
		Hash:                  HashToken(secret),
		Hint:                  TokenHint(prefix, secret),
		At:                    now,
		PreviousHashExpiresAt: now.Add(d),
	}, secret, nil
}

// HasHiddenCharacters reports whether s, a name someone typed, holds a
// character that would let it pose as something else where keygate shows
// it to other people: a control character (a line break starts a line of
// its own in a plain-text email or a log read as text, an escape drives
// the terminal the CLI prints to) or a mark that reorders text on screen
// (Unicode's bidirectional overrides, embeddings, isolates and marks).
func HasHiddenCharacters(s string) bool {
	for _, r := range s {
		switch {
		case unicode.IsControl(r),
			r >= '\u202a' && r <= '\u202e',              // embeddings and overrides
			r >= '\u2066' && r <= '\u2069',              // isolates
			r == '\u200e', r == '\u200f', r == '\u061c': // directional marks
			return true
		}
	}
	return false
}

// CheckRotatable returns why tok cannot be rotated at now, or nil: a
// deleted token is ENOTFOUND (as everywhere a deleted token is looked up),
// an expired one ECONFLICT, since a new secret would not work either.
func CheckRotatable(tok *Token, now time.Time) error {
	switch {
	case tok.RevokedAt != nil:
		return Errorf(ENOTFOUND, "Token %q not found.", tok.ID)
	case tok.Expired(now):
		return Errorf(ECONFLICT, "Token %q has expired and cannot be rotated; create a new token instead.", tok.ID)
	}
	return nil
}

// ApplyRotation updates tok as RotateToken stores rot.
func (t *Token) ApplyRotation(rot TokenRotation) {
	at, until := rot.At.UTC(), rot.PreviousHashExpiresAt.UTC()
	t.PreviousHash, t.PreviousHashExpiresAt = t.Hash, &until
	t.Hash, t.Hint, t.RotatedAt = rot.Hash, rot.Hint, &at
}

// TokenRequest is what a person or a script asks for when creating a token.
type TokenRequest struct {
	OrganizationID string
	API            string
	Name           string
	Scopes         []string
	Environment    string // default live
	Expiry         ExpiryChoice
	CreatedBy      string
}

// TokenPolicy is what an API allows for its tokens.
type TokenPolicy struct {
	BasePrefix      string   // e.g. "cm_"; the environment is appended
	Scopes          []string // scopes a token may carry; empty: any
	AllowNever      bool     // whether ExpiryNever is offered
	MaxActiveTokens int      // per organization; 0: unlimited
}

// NewToken validates req against policy and returns the token to store and
// its secret, which the caller shows once and then forgets.
func NewToken(policy TokenPolicy, req TokenRequest, now time.Time) (*Token, string, error) {
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return nil, "", Errorf(EINVALID, "Token name is required.")
	} else if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxTokenNameLength {
		return nil, "", Errorf(EINVALID, "Token name must be 1 to %d characters.", MaxTokenNameLength)
	} else if HasHiddenCharacters(name) {
		return nil, "", Errorf(EINVALID, "Token name must not hold control characters (line breaks, tabs, escapes) or marks that reorder text.")
	}
	env := req.Environment
	if env == "" {
		env = EnvironmentLive
	} else if env != EnvironmentLive && env != EnvironmentTest {
		return nil, "", Errorf(EINVALID, "Environment must be %q or %q.", EnvironmentLive, EnvironmentTest)
	}
	if req.Expiry == ExpiryNever && !policy.AllowNever {
		return nil, "", Errorf(EINVALID, "This API does not allow tokens that never expire.")
	}
	expiresAt, err := req.Expiry.ExpiresAt(now)
	if err != nil {
		return nil, "", err
	}
	scopes := dedupe(req.Scopes)
	if len(policy.Scopes) > 0 {
		for _, s := range scopes {
			if !HasAll(policy.Scopes, []string{s}) {
				return nil, "", Errorf(EINVALID, "Unknown scope %q.", s)
			}
		}
	}
	prefix := TokenPrefix(policy.BasePrefix, env)
	secret := GenerateTokenSecret(prefix)
	tok := &Token{
		ID:             NewID("tok"),
		OrganizationID: req.OrganizationID,
		API:            req.API,
		Name:           name,
		Scopes:         scopes,
		Environment:    env,
		Hash:           HashToken(secret),
		Hint:           TokenHint(prefix, secret),
		CreatedAt:      now.UTC(),
		CreatedBy:      req.CreatedBy,
		ExpiresAt:      expiresAt,
	}
	return tok, secret, nil
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// NewID returns a random identifier with a readable type prefix,
// e.g. "tok_3ZK9…". IDs are public; they are not secrets.
func NewID(kind string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("keygate: crypto/rand failed: " + err.Error())
	}
	return kind + "_" + strings.ToLower(hex.EncodeToString(b[:]))
}
