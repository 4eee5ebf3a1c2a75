package dashboard

import (
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
)

// staticFiles serves the embedded stylesheet and script. They change only
// with a new keygate binary, so browsers may keep them for an hour.
func staticFiles() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	fileServer := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/static/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	})
}

// usedForms remembers the one-time ids of create-token forms already
// submitted, so a browser that re-posts the form (reload, back button) gets
// neither a second token nor the first one's secret again. An id carries the
// time its form was made; ids older than ttl are refused as expired, so
// only ttl's worth of ids is kept in memory.
type usedForms struct {
	ttl  time.Duration
	mu   sync.Mutex
	seen map[string]time.Time
	// pruned is when expired ids were last dropped: at most once a minute,
	// so a submission costs a map lookup, not a walk over every id.
	pruned time.Time
	prunes int // how many times, for tests
}

func newUsedForms(ttl time.Duration) *usedForms {
	return &usedForms{ttl: ttl, seen: map[string]time.Time{}}
}

// newID returns the id for a form rendered at now.
func (u *usedForms) newID(now time.Time) string {
	return strconv.FormatInt(now.Unix(), 10) + "." + randomString()
}

// Errors from use.
var (
	errFormExpired = keygate.Errorf(keygate.EINVALID, "This form has expired. Open it again to create a token.")
	errFormUsed    = keygate.Errorf(keygate.ECONFLICT, "This form was already submitted and its token was shown once. It is in the token list; it cannot be shown again.")
)

// use marks id used, or says why it cannot be.
func (u *usedForms) use(id string, now time.Time) error {
	issued, _, ok := strings.Cut(id, ".")
	unix, err := strconv.ParseInt(issued, 10, 64)
	if !ok || err != nil {
		return errFormExpired
	}
	if age := now.Sub(time.Unix(unix, 0)); age > u.ttl || age < -time.Minute {
		return errFormExpired
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if now.Sub(u.pruned) >= time.Minute {
		u.pruned = now
		u.prunes++
		for k, at := range u.seen {
			if now.Sub(at) > u.ttl+time.Minute {
				delete(u.seen, k)
			}
		}
	}
	if _, used := u.seen[id]; used {
		return errFormUsed
	}
	u.seen[id] = now
	return nil
}

// release forgets id, so a form refused for its content can be sent again.
func (u *usedForms) release(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.seen, id)
}
