package dashboard

import (
	"testing"
	"time"
)

// Used form ids are dropped once they expire, in one walk a minute rather
// than one per submission (which held the lock for a walk over every id).
func TestUsedFormsPruneAtMostOnceAMinute(t *testing.T) {
	u := newUsedForms(time.Hour)
	start := time.Now()
	const submissions = 5000
	for i := range submissions {
		now := start.Add(time.Duration(i) * time.Millisecond) // 5 s of submissions
		if err := u.use(u.newID(now), now); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d submissions in 5s walked the used ids %d time(s)", submissions, u.prunes)
	if u.prunes > 1 {
		t.Errorf("the used ids were walked %d times for %d submissions in 5s, want at most once", u.prunes, submissions)
	}
	later := start.Add(2*time.Hour + 2*time.Minute)
	if err := u.use(u.newID(later), later); err != nil {
		t.Fatal(err)
	}
	if len(u.seen) != 1 {
		t.Errorf("%d ids kept after they expired, want only the new one", len(u.seen))
	}
}
