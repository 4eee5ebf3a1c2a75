package storetest

import (
	"testing"
	"time"
)

var instanceTests = []test{
	{"CountsLiveInstances", testInstancesCounted},
	{"ForgetsSilentInstances", testInstancesExpire},
}

func testInstancesCounted(t *testing.T, e *env) {
	other := e.open()
	beat := func(name, instance string, want int) {
		t.Helper()
		s := e.store
		if instance == "b" {
			s = other // as another process would
		}
		n, err := s.BeatInstance(e.ctx, instance, time.Minute)
		must(t, name, err)
		if n != want {
			t.Fatalf("%s: %d live instances, want %d", name, n, want)
		}
	}
	beat("first beat of a", "a", 1)
	beat("first beat of b", "b", 2)
	beat("a again", "a", 2)
	beat("b again", "b", 2)
	beat("first beat of c", "c", 3)
	must(t, "WithdrawInstance(c)", e.store.WithdrawInstance(e.ctx, "c"))
	must(t, "WithdrawInstance(c) again", e.store.WithdrawInstance(e.ctx, "c"))
	beat("a after c withdrew", "a", 2)
}

func testInstancesExpire(t *testing.T, e *env) {
	for _, instance := range []string{"a", "b"} {
		if _, err := e.store.BeatInstance(e.ctx, instance, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// Neither has beaten within the last millisecond but the one beating.
	time.Sleep(20 * time.Millisecond)
	n, err := e.store.BeatInstance(e.ctx, "a", time.Millisecond)
	must(t, "BeatInstance with a short expiry", err)
	if n != 1 {
		t.Fatalf("%d live instances once b went silent, want 1 (a)", n)
	}
	n, err = e.store.BeatInstance(e.ctx, "c", time.Minute)
	must(t, "BeatInstance(c)", err)
	if n != 2 {
		t.Fatalf("%d live instances after b was forgotten and c beat, want 2", n)
	}
}
