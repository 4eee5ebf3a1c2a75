package storetest

import (
	"testing"
	"time"

	"github.com/keygate/keygate"
)

var usageTests = []test{
	{"RecordAddsUp", testUsageRecordAddsUp},
	{"BatchWrittenOnce", testUsageBatchWrittenOnce},
	{"ListRangeAndFilter", testUsageList},
}

func testUsageRecordAddsUp(t *testing.T, e *env) {
	hour := e.now.Truncate(time.Hour)
	must(t, "RecordUsage", e.store.RecordUsage(e.ctx, "", []keygate.UsageCount{
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: hour, Requests: 10, Errors: 2, RateLimited: 1},
	}))
	must(t, "RecordUsage again", e.store.RecordUsage(e.ctx, "", []keygate.UsageCount{
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: hour, Requests: 5, Errors: 1, RateLimited: 3},
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: hour, Requests: 1},
	}))
	must(t, "RecordUsage through another handle", e.open().RecordUsage(e.ctx, "", []keygate.UsageCount{
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: hour, Requests: 100},
	}))
	must(t, "RecordUsage with nothing", e.store.RecordUsage(e.ctx, "", nil))

	got, err := e.store.ListUsage(e.ctx, keygate.UsageQuery{OrganizationID: "org_a", From: hour, To: hour.Add(time.Hour)})
	must(t, "ListUsage", err)
	equal(t, "summed usage", got, []keygate.UsageCount{
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: hour, Requests: 116, Errors: 3, RateLimited: 4},
	})
}

func testUsageList(t *testing.T, e *env) {
	h0 := e.now.Truncate(time.Hour).Add(-3 * time.Hour)
	h1, h2, h3 := h0.Add(time.Hour), h0.Add(2*time.Hour), h0.Add(3*time.Hour)
	counts := []keygate.UsageCount{
		{OrganizationID: "org_a", TokenID: "tok_2", Hour: h2, Requests: 7},
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: h0, Requests: 1},
		{OrganizationID: "org_a", TokenID: "tok_2", Hour: h1, Requests: 3, Errors: 1},
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: h1, Requests: 2, RateLimited: 2},
		{OrganizationID: "org_a", TokenID: "", Hour: h1, Requests: 9}, // OAuth clients
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: h3, Requests: 4},
		{OrganizationID: "org_b", TokenID: "tok_9", Hour: h1, Requests: 50},
	}
	must(t, "RecordUsage", e.store.RecordUsage(e.ctx, "", counts))

	tests := []struct {
		name  string
		query keygate.UsageQuery
		want  []keygate.UsageCount
	}{
		{"organization, [h0, h3)", keygate.UsageQuery{OrganizationID: "org_a", From: h0, To: h3},
			[]keygate.UsageCount{counts[1], counts[4], counts[3], counts[2], counts[0]}},
		{"organization, [h1, h2)", keygate.UsageQuery{OrganizationID: "org_a", From: h1, To: h2},
			[]keygate.UsageCount{counts[4], counts[3], counts[2]}},
		{"token, [h0, h4)", keygate.UsageQuery{OrganizationID: "org_a", TokenID: "tok_1", From: h0, To: h3.Add(time.Hour)},
			[]keygate.UsageCount{counts[1], counts[3], counts[5]}},
		{"other organization", keygate.UsageQuery{OrganizationID: "org_b", From: h0, To: h3},
			[]keygate.UsageCount{counts[6]}},
		{"empty range", keygate.UsageQuery{OrganizationID: "org_a", From: h1, To: h1}, nil},
	}
	for _, tt := range tests {
		got, err := e.store.ListUsage(e.ctx, tt.query)
		must(t, "ListUsage("+tt.name+")", err)
		equal(t, "ListUsage("+tt.name+")", got, tt.want)
	}
}

// A batch written again under its id, through any handle, adds nothing:
// the writer may have seen a failure after the commit.
func testUsageBatchWrittenOnce(t *testing.T, e *env) {
	hour := e.now.Truncate(time.Hour)
	batch := []keygate.UsageCount{
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: hour, Requests: 10, Errors: 2, RateLimited: 1},
	}
	must(t, "RecordUsage(ub_1)", e.store.RecordUsage(e.ctx, "ub_1", batch))
	must(t, "RecordUsage(ub_1) again", e.store.RecordUsage(e.ctx, "ub_1", batch))
	must(t, "RecordUsage(ub_1) through another handle", e.open().RecordUsage(e.ctx, "ub_1", batch))
	must(t, "RecordUsage(ub_2)", e.store.RecordUsage(e.ctx, "ub_2", batch))
	must(t, "RecordUsage without an id", e.store.RecordUsage(e.ctx, "", batch))
	must(t, "RecordUsage without an id again", e.store.RecordUsage(e.ctx, "", batch))

	got, err := e.store.ListUsage(e.ctx, keygate.UsageQuery{OrganizationID: "org_a", From: hour, To: hour.Add(time.Hour)})
	must(t, "ListUsage", err)
	equal(t, "usage of ub_1 once, ub_2 once and two batches without an id", got, []keygate.UsageCount{
		{OrganizationID: "org_a", TokenID: "tok_1", Hour: hour, Requests: 40, Errors: 8, RateLimited: 4},
	})
}
