package cluster_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// A token rotated through instance 1 with a short grace period: during
// the grace, every instance accepts both secrets (the old one from its
// cache); when it ends, every instance refuses the old secret within a
// second, and never before; the new secret keeps working everywhere.
// The grace is 1.5s, set on the rotation directly: the API offers only 0,
// 1h, 24h and 7d, and the check at the grace's end is the same.
func TestRotatedSecretRefusedOnEveryInstanceWhenTheGraceEnds(t *testing.T) {
	c := newCluster(t)
	c.start(3, defaults, "")
	first := c.instances[0]
	tok, oldSecret := c.token(first)
	for _, in := range c.instances {
		in.mustAccept(t, oldSecret)
	}
	rot, newSecret, err := keygate.NewTokenSecret(first.server.Gateway(api).API().Tokens, tok, keygate.GraceNone, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rot.PreviousHashExpiresAt = rot.At.Add(1500 * time.Millisecond)
	if _, err := first.server.Store().RotateToken(context.Background(), rot); err != nil {
		t.Fatal(err)
	}
	graceEnds := rot.PreviousHashExpiresAt
	for _, in := range c.instances {
		in.mustAccept(t, newSecret)
		in.mustAccept(t, oldSecret)
	}

	took := make([]time.Duration, len(c.instances))
	var wg sync.WaitGroup
	for i, in := range c.instances {
		wg.Go(func() {
			for time.Since(graceEnds) < 10*time.Second {
				a := in.get("/api/v1/organization", oldSecret)
				now := time.Now()
				switch {
				case a.status == http.StatusUnauthorized && a.body == bodyInvalid:
					took[i] = now.Sub(graceEnds)
					return
				case a.status != http.StatusOK:
					t.Errorf("%s answered %d %s for the old secret", in.name, a.status, a.body)
					return
				}
				time.Sleep(time.Millisecond)
			}
			took[i] = time.Hour
		})
	}
	wg.Wait()
	for i, d := range took {
		t.Logf("%s refused the old secret %s after its grace ended", c.instances[i].name, d)
		// The request that saw the refusal may have started up to its own
		// round trip before it; a refusal answered before the grace ended
		// by more than that would be a bug.
		if d < -50*time.Millisecond || d >= maxRevocationDelay {
			t.Errorf("%s refused the old secret %s after the grace ended, want within [0, %s)", c.instances[i].name, d, maxRevocationDelay)
		}
	}
	for _, in := range c.instances {
		in.mustAccept(t, newSecret)
	}
}

// Rotated without grace through instance 1 (as the API's "grace": "0"
// does), the old secret is refused by instances 2 and 3 within a second.
func TestRotationWithoutGraceReachesEveryInstance(t *testing.T) {
	c := newCluster(t)
	c.start(3, defaults, "")
	first, others := c.instances[0], c.instances[1:]
	tok, oldSecret := c.token(first)
	for _, in := range c.instances {
		in.mustAccept(t, oldSecret)
	}
	var newSecret string
	took := changeSeenAfter(t, others, "/api/v1/organization", oldSecret, answer{http.StatusUnauthorized, bodyInvalid}, func() {
		var err error
		_, newSecret, err = manage.RotateToken(context.Background(), first.server.Store(), []*keygate.API{first.server.Gateway(api).API()},
			c.organization(), tok.ID, keygate.GraceNone, time.Now())
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("rotated without grace through %s: old secret refused by %s after %s, by %s after %s",
		first.name, others[0].name, took[0], others[1].name, took[1])
	for i, d := range took {
		if d >= maxRevocationDelay {
			t.Errorf("%s refused the old secret after %s, want under %s", others[i].name, d, maxRevocationDelay)
		}
	}
	for _, in := range c.instances {
		in.mustAccept(t, newSecret)
	}
}
