package password

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
)

func verify(t *testing.T, hash, pw string) bool {
	t.Helper()
	ok, err := Verify(context.Background(), hash, pw)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestHashAndVerify(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=2,p=2$") {
		t.Fatalf("unexpected PHC string %q", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if !verify(t, h, "correct horse") {
		t.Fatal("right password refused")
	}
	if verify(t, h, "correct horsE") || verify(t, h, "") {
		t.Fatal("wrong password accepted")
	}
	h2, _ := Hash("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=65536,t=2,p=2$c2FsdA$a2V5", "$argon2id$v=19$m=x$c2FsdA$a2V5", "$argon2id$v=19$m=65536,t=2,p=2$!!$a2V5", "$argon2id$v=19$m=65536,t=2,p=2$c2FsdA$"} {
		if verify(t, h, "pw") {
			t.Errorf("malformed hash %q verified", h)
		}
	}
}

func TestTooLongPasswordRefused(t *testing.T) {
	long := strings.Repeat("a", MaxLength+1)
	if _, err := Hash(long); err == nil {
		t.Fatal("over-long password hashed")
	}
}

// With every slot taken, a check waits its time and gives up with ErrBusy
// instead of queueing; it computes nothing. Past MaxWaiting waiters the
// answer is immediate, and a cancelled request stops waiting.
func TestVerifyGivesUpWhenEverySlotIsTaken(t *testing.T) {
	h := dummyHash()
	slotWait = 200 * time.Millisecond
	defer func() { slotWait = MaxWait }()
	for range MaxConcurrent {
		slots <- struct{}{}
	}
	defer func() {
		for range MaxConcurrent {
			<-slots
		}
	}()
	before := Computed()
	start := time.Now()
	ok, err := Verify(context.Background(), h, "pw")
	waited := time.Since(start)
	if ok || !errors.Is(err, ErrBusy) {
		t.Fatalf("Verify with no free slot: %v, %v", ok, err)
	}
	if waited < slotWait || waited > slotWait+time.Second {
		t.Errorf("waited %s for a slot, want about %s", waited, slotWait)
	}

	waiting.Add(MaxWaiting)
	start = time.Now()
	_, err = Verify(context.Background(), h, "pw")
	waiting.Add(-MaxWaiting)
	if !errors.Is(err, ErrBusy) || time.Since(start) >= slotWait {
		t.Errorf("Verify with %d waiting: %v after %s, want ErrBusy at once", MaxWaiting, err, time.Since(start))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err = Verify(ctx, h, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v", err)
	}
	if Computed() != before {
		t.Error("a hash was computed without a slot")
	}
}

func TestCheckPolicy(t *testing.T) {
	for pw, want := range map[string]string{
		"demo":                    "Password must be at least 12 characters.",
		"elevenchars":             "Password must be at least 12 characters.",
		"ÅÅÅÅÅÅÅÅÅÅÅ":             "Password must be at least 12 characters.", // 11 characters, 22 bytes
		"password1234":            "This password is one of the most commonly used; choose another.",
		"QwertyuiOP12":            "This password is one of the most commonly used; choose another.",
		"123456789012":            "This password is one of the most commonly used; choose another.",
		strings.Repeat("a", 1025): "Password must be at most 1024 bytes.",
		"plum orchard 42":         "",
		"ÅÅÅÅÅÅÅÅÅÅÅÅ":            "",
	} {
		err := CheckPolicy(pw)
		if got := keygate.ErrorMessage(err); got != want || (want != "" && keygate.ErrorCode(err) != keygate.EINVALID) {
			t.Errorf("CheckPolicy(%.20q) = %v, want %q", pw, err, want)
		}
	}
	if n := len(common()); n < 2500 {
		t.Errorf("only %d common passwords embedded", n)
	}
}
