package evict

import "testing"

func TestMakeRoomDropsExpiredFirstThenAnEighth(t *testing.T) {
	const bound = 800
	m := map[int]bool{}
	for i := range bound {
		m[i] = i < 40 // the first 40 have expired
	}
	MakeRoom(m, bound, 8, func(expired bool) bool { return expired })
	for i := range 40 {
		if _, ok := m[i]; ok {
			t.Fatalf("expired entry %d kept", i)
		}
	}
	if want := bound - bound/8; len(m) != want {
		t.Fatalf("%d entries left, want %d (an eighth of %d freed)", len(m), want, bound)
	}
}

func TestMakeRoomKeepsWhatExpiryFreed(t *testing.T) {
	m := map[int]bool{}
	for i := range 100 {
		m[i] = i%2 == 0 // half expired: more than an eighth
	}
	MakeRoom(m, 100, 8, func(expired bool) bool { return expired })
	if len(m) != 50 {
		t.Fatalf("%d entries left, want the 50 live ones", len(m))
	}
	for k, expired := range m {
		if expired {
			t.Fatalf("expired entry %d kept", k)
		}
	}
}

func TestMakeRoomFreesTheShareAsked(t *testing.T) {
	m := map[int]bool{}
	for i := range 1000 {
		m[i] = false
	}
	MakeRoom(m, 1000, 10, func(bool) bool { return false })
	if len(m) != 900 {
		t.Fatalf("%d entries left, want 900 (a tenth freed)", len(m))
	}
}

func TestMakeRoomFreesOneFromATinyMap(t *testing.T) {
	m := map[int]bool{1: false, 2: false}
	MakeRoom(m, 2, 8, func(bool) bool { return false })
	if len(m) != 1 {
		t.Fatalf("%d entries left, want 1", len(m))
	}
}
