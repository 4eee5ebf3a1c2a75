package manage

import (
	"context"
	"time"

	"github.com/keygate/keygate"
)

// UsagePeriod is a window of usage people can look at.
type UsagePeriod string

const (
	UsageDay  UsagePeriod = "24h"
	UsageWeek UsagePeriod = "7d"
)

// ParseUsagePeriod reads "24h" or "7d"; "" is the last 24 hours.
func ParseUsagePeriod(s string) (UsagePeriod, error) {
	switch UsagePeriod(s) {
	case "", UsageDay:
		return UsageDay, nil
	case UsageWeek:
		return UsageWeek, nil
	}
	return "", keygate.Errorf(keygate.EINVALID, "Unknown period %q: choose 24h or 7d.", s)
}

// Hours returns how many hourly buckets the period spans.
func (p UsagePeriod) Hours() int {
	if p == UsageWeek {
		return 7 * 24
	}
	return 24
}

// Label returns the words a person reads for the period.
func (p UsagePeriod) Label() string {
	if p == UsageWeek {
		return "Last 7 days"
	}
	return "Last 24 hours"
}

// Usage is the traffic of an organization or one token over a period, one
// bucket per hour (hours without traffic included, as zeros), oldest first.
type Usage struct {
	Period  UsagePeriod
	From    time.Time // start of the first hour
	To      time.Time // end of the last hour, which contains now
	Buckets []keygate.UsageCount
	Total   keygate.UsageCount
	// ByToken sums the period per token id ("" for OAuth traffic).
	ByToken map[string]keygate.UsageCount
}

// ReadUsage sums org's usage (one token's when tokenID is set) per hour over
// the period ending with the current hour.
func ReadUsage(ctx context.Context, usage keygate.UsageService, org *keygate.Organization, tokenID string, period UsagePeriod, now time.Time) (*Usage, error) {
	to := now.UTC().Truncate(time.Hour).Add(time.Hour)
	from := to.Add(-time.Duration(period.Hours()) * time.Hour)
	counts, err := usage.ListUsage(ctx, keygate.UsageQuery{OrganizationID: org.ID, TokenID: tokenID, From: from, To: to})
	if err != nil {
		return nil, err
	}
	u := &Usage{Period: period, From: from, To: to, Buckets: make([]keygate.UsageCount, period.Hours()), ByToken: map[string]keygate.UsageCount{}}
	for i := range u.Buckets {
		u.Buckets[i] = keygate.UsageCount{OrganizationID: org.ID, TokenID: tokenID, Hour: from.Add(time.Duration(i) * time.Hour)}
	}
	for _, c := range counts {
		i := int(c.Hour.UTC().Sub(from) / time.Hour)
		if i < 0 || i >= len(u.Buckets) {
			continue
		}
		b := &u.Buckets[i]
		b.Requests += c.Requests
		b.Errors += c.Errors
		b.RateLimited += c.RateLimited
		u.Total.Requests += c.Requests
		u.Total.Errors += c.Errors
		u.Total.RateLimited += c.RateLimited
		t := u.ByToken[c.TokenID]
		t.TokenID = c.TokenID
		t.Requests += c.Requests
		t.Errors += c.Errors
		t.RateLimited += c.RateLimited
		u.ByToken[c.TokenID] = t
	}
	return u, nil
}
