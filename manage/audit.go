package manage

import (
	"context"
	"strconv"
	"time"

	"github.com/keygate/keygate"
)

// AuditQuery is a page request for the audit log as people and scripts
// write it: dates as RFC 3339 times or YYYY-MM-DD days, the cursor as the
// previous page gave it.
type AuditQuery struct {
	Action, Actor, From, To, Cursor string
	Limit                           int
}

// AuditPage is one page of entries, newest first, and the cursor of the
// next (older) page; "" when there is none.
type AuditPage struct {
	Entries    []*keygate.AuditEntry
	NextCursor string
}

// ListAudit returns a page of the audit log of org, or of the whole site
// when org is nil (site administrators only). An organization's log is
// for its owners and site administrators; owners see a site
// administrator's entries without its address and user agent
// (keygate.Actor.ForOrganization).
func ListAudit(ctx context.Context, log keygate.AuditLog, c Caller, a *Access, q AuditQuery) (*AuditPage, error) {
	f := keygate.AuditFilter{Action: q.Action, Actor: q.Actor, Limit: q.Limit}
	if a == nil {
		if err := RequireAdmin(c); err != nil {
			return nil, err
		}
	} else {
		if !a.CanManageMembers() {
			return nil, keygate.Errorf(keygate.EFORBIDDEN, "Only the organization's owners can see its audit log.")
		}
		f.OrganizationID = a.Organization.ID
	}
	if f.Action != "" && !keygate.IsAuditAction(f.Action) {
		return nil, keygate.Errorf(keygate.EINVALID, "Unknown audit action %q.", f.Action)
	}
	var err error
	if f.From, err = parseAuditTime("from", q.From, false); err != nil {
		return nil, err
	}
	if f.To, err = parseAuditTime("to", q.To, true); err != nil {
		return nil, err
	}
	if q.Cursor != "" {
		if f.Before, err = strconv.ParseInt(q.Cursor, 10, 64); err != nil || f.Before <= 0 {
			return nil, keygate.Errorf(keygate.EINVALID, "cursor must be the next_cursor of a previous page.")
		}
	}
	if f.Limit < 0 || f.Limit > keygate.MaxAuditPage {
		return nil, keygate.Errorf(keygate.EINVALID, "limit must be 1 to %d.", keygate.MaxAuditPage)
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	entries, err := log.ListAuditEntries(ctx, f)
	if err != nil {
		return nil, err
	}
	if !c.IsAdmin() {
		for _, e := range entries {
			e.Actor = e.Actor.ForOrganization()
		}
	}
	p := &AuditPage{Entries: entries}
	if len(entries) == f.Limit {
		p.NextCursor = strconv.FormatInt(entries[len(entries)-1].Seq, 10)
	}
	return p, nil
}

// parseAuditTime reads an RFC 3339 time or a YYYY-MM-DD day (UTC); a day
// given as the end of a range includes that whole day.
func parseAuditTime(name, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	day, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, keygate.Errorf(keygate.EINVALID, "%s must be a date (2026-01-31) or an RFC 3339 time, got %q.", name, s)
	}
	if end {
		day = day.Add(24 * time.Hour)
	}
	return day, nil
}
