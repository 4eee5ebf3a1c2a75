package manage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
	"github.com/keygate/keygate/sqlite"
)

// FuzzAuditQuery pages through a real SQLite audit log with arbitrary
// query parameters, as GET /api/v1/audit and the dashboard's audit page
// take them (action, actor, from, to, cursor, limit). Whatever they hold:
// a refusal is the caller's (EINVALID); an answer is exactly the entries
// a plain reading of the filter selects, newest first, at most a page;
// and the next page's cursor continues right after the last entry shown,
// so paging never repeats or skips one.
func FuzzAuditQuery(f *testing.F) {
	for _, s := range []struct {
		action, actor, from, to, cursor string
		limit                           int
	}{
		{"", "", "", "", "", 0},
		{"token.created", "ann@example.com", "", "", "", 5},
		{"", "ANN@EXAMPLE.COM ", "2026-01-01", "2026-01-01", "", 3},
		{"member.added", "ops", "2026-01-01T00:10:00Z", "2026-01-01T00:30:00+01:00", "30", 0},
		{"", "usr_bob", "", "", "-1", 1},
		{"", "", "", "", "9223372036854775807", 100},
		{"", "", "", "", "+12", 101},
		{"", "", "2026-13-01", "", "", 0},
		{"'; DROP TABLE audit_log; --", "% _", "", "", "1e3", -1},
		{"", "b%", "", "", " 5", 0},
	} {
		f.Add(s.action, s.actor, s.from, s.to, s.cursor, s.limit)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "keygate.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	actions := []string{keygate.AuditTokenCreated, keygate.AuditTokenDeleted, keygate.AuditMemberAdded}
	actors := []keygate.Actor{{Type: "user", ID: "usr_ann", Name: "Ann@Example.com"}, {Type: "admin_key", ID: "key_1", Name: "ops"},
		{Type: "user", ID: "usr_bob", Name: "bob@example.com"}, {Type: "user", ID: "usr_pct", Name: "b%"}}
	var all []*keygate.AuditEntry // oldest first
	for i := range 40 {
		e := &keygate.AuditEntry{At: base.Add(time.Duration(i) * time.Minute), Action: actions[i%len(actions)],
			Actor: actors[i%len(actors)], TargetID: fmt.Sprint("tgt_", i)}
		if err := st.AppendAuditEntry(ctx, e); err != nil {
			f.Fatal(err)
		}
		all = append(all, e)
	}
	admin := manage.Caller{AdminKey: &keygate.AdminKey{ID: "key_1", Name: "ops"}}

	f.Fuzz(func(t *testing.T, action, actor, from, to, cursor string, limit int) {
		q := manage.AuditQuery{Action: action, Actor: actor, From: from, To: to, Cursor: cursor, Limit: limit}
		page, err := manage.ListAudit(ctx, st, admin, nil, q)
		if err != nil {
			if keygate.ErrorCode(err) != keygate.EINVALID {
				t.Fatalf("%+v: %v", q, err)
			}
			return
		}
		before := int64(0)
		if cursor != "" {
			before, err = strconv.ParseInt(cursor, 10, 64)
			if err != nil || before <= 0 {
				t.Fatalf("cursor %q accepted", cursor)
			}
		}
		fromT, _ := auditTime(from, false)
		toT, _ := auditTime(to, true)
		want := []int64{}
		for i := len(all) - 1; i >= 0; i-- {
			e := all[i]
			a := keygate.NormalizeActorFilter(actor)
			if (action == "" || e.Action == action) && (a == "" || e.Actor.ID == a || asciiLower(e.Actor.Name) == asciiLower(a)) &&
				(fromT.IsZero() || !e.At.Before(fromT)) && (toT.IsZero() || e.At.Before(toT)) && (before == 0 || e.Seq < before) {
				want = append(want, e.Seq)
			}
		}
		size := limit
		if size == 0 {
			size = 50
		}
		want = want[:min(len(want), size)]
		got := []int64{}
		for _, e := range page.Entries {
			got = append(got, e.Seq)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%+v: entries %v, want %v", q, got, want)
		}
		if page.NextCursor == "" {
			return
		}
		if page.NextCursor != strconv.FormatInt(got[len(got)-1], 10) {
			t.Fatalf("%+v: next cursor %q after entry %d", q, page.NextCursor, got[len(got)-1])
		}
		q.Cursor = page.NextCursor
		next, err := manage.ListAudit(ctx, st, admin, nil, q)
		if err != nil {
			t.Fatalf("the next page's cursor %q is refused: %v", page.NextCursor, err)
		}
		last := got[len(got)-1]
		for _, e := range next.Entries {
			if e.Seq >= last {
				t.Fatalf("%+v: the next page repeats entry %d", q, e.Seq)
			}
		}
	})
}

// auditTime reads a from or to value as the audit query documents it.
func auditTime(s string, end bool) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	day, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, false
	}
	if end {
		day = day.Add(24 * time.Hour)
	}
	return day, true
}

// asciiLower is SQL's lower() on the names: ASCII letters only.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
