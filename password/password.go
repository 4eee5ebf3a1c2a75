// Package password hashes and checks user passwords with argon2id, stored in
// the PHC string format so parameters can be raised later without breaking
// existing hashes. It never logs or returns a password.
//
// Every hash holds 64 MiB while it runs, so the process computes at most
// MaxConcurrent at once; a caller that cannot get a slot within a short
// wait, or while too many wait already, gets ErrBusy instead of queueing
// (and allocating) without bound.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/keygate/keygate"
)

// Parameters follow the RFC 9106 second recommendation scaled to a login
// taking tens of milliseconds on a small server.
const (
	timeCost    = 2
	memoryKiB   = 64 * 1024
	parallelism = 2
	saltLength  = 16
	keyLength   = 32
	// MaxLength bounds the work an attacker can force per login attempt.
	MaxLength = 1024
	// MaxConcurrent is how many hashes the process computes at once:
	// 2 × 64 MiB bounds their memory at 128 MiB, and on a small server
	// more at once would only make each slower.
	MaxConcurrent = 2
	// MaxWait is how long a caller waits for a free slot before ErrBusy,
	// and MaxWaiting how many may wait at once; more get ErrBusy at once.
	MaxWait    = 3 * time.Second
	MaxWaiting = 64
)

// ErrBusy is returned when every hashing slot stayed taken for MaxWait.
var ErrBusy = keygate.Errorf(keygate.EUNAVAILABLE, "keygate is busy checking other passwords. Try again in a few seconds.")

var (
	slots    = make(chan struct{}, MaxConcurrent)
	waiting  atomic.Int32
	slotWait = MaxWait // shortened by tests
	// computed counts argon2id computations since the process started.
	computed atomic.Int64
)

// Computed returns how many argon2id hashes this process has computed
// (hashing and checking), for metrics and tests.
func Computed() int64 { return computed.Load() }

var b64 = base64.RawStdEncoding

// Hash returns the argon2id PHC string for pw.
func Hash(pw string) (string, error) {
	if len(pw) > MaxLength {
		return "", errors.New("password too long")
	}
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := idKey(context.Background(), []byte(pw), salt, timeCost, memoryKiB, parallelism, keyLength)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, timeCost, parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC string hash. Malformed hashes
// never match. The error is ErrBusy or ctx's when no slot was free.
func Verify(ctx context.Context, hash, pw string) (bool, error) {
	if len(pw) > MaxLength {
		return false, nil
	}
	p, ok := parse(hash)
	if !ok {
		return false, nil
	}
	got, err := idKey(ctx, []byte(pw), p.salt, p.iters, p.mem, p.par, uint32(len(p.key)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, p.key) == 1, nil
}

// VerifyDummy spends what Verify spends on a non-matching hash, so a login
// for an unknown email costs the same time and memory as a wrong password.
func VerifyDummy(ctx context.Context, pw string) error {
	if len(pw) > MaxLength {
		pw = pw[:MaxLength]
	}
	_, err := Verify(ctx, dummyHash(), pw)
	return err
}

var dummyHash = sync.OnceValue(func() string {
	h, err := Hash("keygate-dummy-password")
	if err != nil {
		panic("password: hashing the dummy password failed: " + err.Error())
	}
	return h
})

type phc struct {
	mem, iters uint32
	par        uint8
	salt, key  []byte
}

func parse(hash string) (phc, bool) {
	var p phc
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.mem, &p.iters, &p.par); err != nil {
		return p, false
	}
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, false
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) == 0 {
		return p, false
	}
	return p, true
}

// idKey computes argon2id in one of the process's slots.
func idKey(ctx context.Context, pw, salt []byte, iters, mem uint32, par uint8, length uint32) ([]byte, error) {
	select {
	case slots <- struct{}{}:
	default:
		if err := waitForSlot(ctx); err != nil {
			return nil, err
		}
	}
	defer func() { <-slots }()
	computed.Add(1)
	return argon2.IDKey(pw, salt, iters, mem, par, length), nil
}

// waitForSlot waits up to slotWait for a slot, unless MaxWaiting callers
// wait already.
func waitForSlot(ctx context.Context) error {
	if waiting.Add(1) > MaxWaiting {
		waiting.Add(-1)
		return ErrBusy
	}
	defer waiting.Add(-1)
	wait := time.NewTimer(slotWait)
	defer wait.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-wait.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}
