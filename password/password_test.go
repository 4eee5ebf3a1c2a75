package password

import (
	"strings"
	"testing"
)

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
	if !Verify(h, "correct horse") {
		t.Fatal("right password refused")
	}
	if Verify(h, "correct horsE") || Verify(h, "") {
		t.Fatal("wrong password accepted")
	}
	h2, _ := Hash("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=65536,t=2,p=2$c2FsdA$a2V5", "$argon2id$v=19$m=x$c2FsdA$a2V5", "$argon2id$v=19$m=65536,t=2,p=2$!!$a2V5", "$argon2id$v=19$m=65536,t=2,p=2$c2FsdA$"} {
		if Verify(h, "pw") {
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
