package demo

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate"
)

// eventsFor serves the events API as seen by one organization's token.
func eventsFor(id *keygate.Identity) http.Handler { return EventsAPI(verified(id)) }

func TestPublicProfile(t *testing.T) {
	// Public routes never ask for an identity: the seed's curl has no token.
	h := EventsAPI(func(*http.Request) (*keygate.Identity, error) {
		t.Error("a public route asked for an identity")
		return nil, nil
	})
	res := do(t, h, "GET", "/p/abc123def456", "")
	var got struct{ Data Profile }
	res.decode(t, &got)
	if res.status != http.StatusOK || got.Data.Code != DemoProfileCode || got.Data.Name != "Maya Thompson" || got.Data.Company == "" {
		t.Fatalf("%d %s", res.status, res.body)
	}
	for code := range profiles {
		if res := do(t, h, "GET", "/p/"+code, ""); res.status != http.StatusOK {
			t.Errorf("profile %s: %d", code, res.status)
		}
	}
	if len(profiles) < 3 {
		t.Errorf("only %d profiles", len(profiles))
	}
	for _, path := range []string{"/p/000000000000", "/p/ABC123DEF456", "/p/", "/p/abc123def456/extra"} {
		do(t, h, "GET", path, "").expect(t, http.StatusNotFound, `{"message": "Not Found."}`)
	}
}

func TestRegisterAndCheckIn(t *testing.T) {
	h := EventsAPI(bypassed)
	res := do(t, h, "POST", "/events/2/register", `{"name": "  Dana Wu ", "email": "Dana@Example.com"}`)
	var reg struct{ Data Registration }
	res.decode(t, &reg)
	if res.status != http.StatusCreated || reg.Data.Name != "Dana Wu" || reg.Data.Email != "dana@example.com" ||
		reg.Data.EventID != 2 || reg.Data.Status != "registered" || len(reg.Data.Code) != 12 || reg.Data.CheckedInAt != nil {
		t.Fatalf("register: %d %s", res.status, res.body)
	}

	do(t, h, "POST", "/events/2/register", `{"name": "Dana Again", "email": "dana@example.com"}`).expect(t, http.StatusUnprocessableEntity,
		`{"errors":{"email":["The email has already been taken."]},"message":"The email has already been taken."}`)
	// The same person may register for another event.
	if res := do(t, h, "POST", "/events/3/register", `{"name": "Dana Wu", "email": "dana@example.com"}`); res.status != http.StatusCreated {
		t.Fatalf("register for event 3: %d %s", res.status, res.body)
	}

	res = do(t, h, "POST", "/events/2/checkin", `{"code": "`+reg.Data.Code+`"}`)
	var in struct{ Data Registration }
	res.decode(t, &in)
	if res.status != http.StatusOK || in.Data.Status != "checked_in" || in.Data.CheckedInAt == nil || in.Data.Email != "dana@example.com" {
		t.Fatalf("check in: %d %s", res.status, res.body)
	}
	if res := do(t, h, "POST", "/events/2/checkin", `{"code": "`+reg.Data.Code+`"}`); res.status != http.StatusConflict ||
		!strings.Contains(res.body, `"message":"This registration has already been checked in."`) {
		t.Fatalf("second check in: %d %s", res.status, res.body)
	}
	// A code is a ticket for its own event only.
	do(t, h, "POST", "/events/1/checkin", `{"code": "`+reg.Data.Code+`"}`).expect(t, http.StatusUnprocessableEntity,
		`{"errors":{"code":["The selected code is invalid."]},"message":"The selected code is invalid."}`)

	// Seeded registrations can check in straight away.
	if res := do(t, h, "POST", "/events/1/checkin", `{"code": "reg1a2b3c4d5"}`); res.status != http.StatusOK {
		t.Fatalf("seeded check in: %d %s", res.status, res.body)
	}
}

func TestPublicFormsRefuseBadInput(t *testing.T) {
	h := EventsAPI(bypassed)
	cases := []struct {
		path, body string
		status     int
		want       string
	}{
		{"/events/1/register", `{"name": "x", "email": `, 422,
			`{"errors":{"body":["The request body must be a valid JSON object."]},"message":"The request body must be a valid JSON object."}`},
		{"/events/1/register", `["name", "email"]`, 422,
			`{"errors":{"body":["The request body must be a valid JSON object."]},"message":"The request body must be a valid JSON object."}`},
		{"/events/1/register", `{"name": "x"} {"email": "y"}`, 422,
			`{"errors":{"body":["The request body must be a valid JSON object."]},"message":"The request body must be a valid JSON object."}`},
		{"/events/1/register", ``, 422,
			`{"errors":{"email":["The email field is required."],"name":["The name field is required."]},"message":"The name field is required. (and 1 more error)"}`},
		{"/events/1/register", `{"name": "   ", "email": null}`, 422,
			`{"errors":{"email":["The email field is required."],"name":["The name field is required."]},"message":"The name field is required. (and 1 more error)"}`},
		{"/events/1/register", `{"name": 42, "email": "not-an-email"}`, 422,
			`{"errors":{"email":["The email field must be a valid email address."],"name":["The name field must be a string."]},"message":"The name field must be a string. (and 1 more error)"}`},
		{"/events/1/register", `{"name": "` + strings.Repeat("é", 256) + `", "email": "Someone <a@example.com>"}`, 422,
			`{"errors":{"email":["The email field must be a valid email address."],"name":["The name field must not be greater than 255 characters."]},"message":"The name field must not be greater than 255 characters. (and 1 more error)"}`},
		{"/events/1/checkin", `{}`, 422,
			`{"errors":{"code":["The code field is required."]},"message":"The code field is required."}`},
		{"/events/1/checkin", `{"code": ["reg1a2b3c4d5"]}`, 422,
			`{"errors":{"code":["The code field must be a string."]},"message":"The code field must be a string."}`},
		{"/events/99/register", `{"name": "x", "email": "x@example.com"}`, 404, `{"message": "Not Found."}`},
		{"/events/abc/checkin", `{"code": "reg1a2b3c4d5"}`, 404, `{"message": "Not Found."}`},
		{"/events/1/register", `{"name": "` + strings.Repeat("a", maxBodyBytes) + `"}`, 413, `{"message": "Request Entity Too Large."}`},
	}
	for _, c := range cases {
		do(t, h, "POST", c.path, c.body).expect(t, c.status, c.want)
	}
	// Registering needs POST; other methods are unknown routes.
	do(t, h, "GET", "/events/1/register", "").expect(t, http.StatusNotFound, `{"message": "Not Found."}`)
}

func TestTokenRoutesNeedAnIdentity(t *testing.T) {
	for _, reader := range []IdentityReader{bypassed, verified(nil), nil} {
		h := EventsAPI(reader)
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/api/v1/organization", ""},
			{"GET", "/api/v1/attendees", ""},
			{"POST", "/api/v1/attendees", `{"name": "A", "email": "a@example.com", "event_id": 1}`},
			{"GET", "/api/v1/webhooks", ""},
			{"POST", "/api/v1/webhooks", `{"url": "https://example.com/hook", "events": ["attendee.created"]}`},
			{"DELETE", "/api/v1/webhooks/1", ""},
		} {
			do(t, h, c.method, c.path, c.body).expect(t, http.StatusUnauthorized, `{"error":"missing identity"}`)
		}
	}
}

func TestOrganization(t *testing.T) {
	id := &keygate.Identity{OrganizationID: "org_1", OrganizationSlug: "demo", Plan: "free", Scopes: []string{ScopeOrganizationRead}, API: EventsAPIName,
		Entitlements: keygate.Entitlements{States: []string{"California"}}}
	var got struct {
		Data struct {
			ID, Slug, Plan string
			Entitlements   keygate.Entitlements
			AttendeesCount int `json:"attendees_count"`
			WebhooksCount  int `json:"webhooks_count"`
		}
	}
	do(t, eventsFor(id), "GET", "/api/v1/organization", "").decode(t, &got)
	d := got.Data
	if d.ID != "org_1" || d.Slug != "demo" || d.Plan != "free" || d.Entitlements.States[0] != "California" ||
		d.AttendeesCount != len(seedAttendees) || d.WebhooksCount != 0 {
		t.Fatalf("organization: %+v", d)
	}
}

type attendeeList struct {
	Data []Attendee
	Meta struct {
		CurrentPage int `json:"current_page"`
		PerPage     int `json:"per_page"`
		Total       int
		LastPage    int `json:"last_page"`
	}
}

func listAttendeesOf(t *testing.T, h http.Handler, query string) attendeeList {
	t.Helper()
	var l attendeeList
	res := do(t, h, "GET", "/api/v1/attendees?"+query, "")
	if res.status != http.StatusOK {
		t.Fatalf("list attendees: %d %s", res.status, res.body)
	}
	res.decode(t, &l)
	return l
}

func TestAttendeesAreKeptPerOrganization(t *testing.T) {
	h := EventsAPI(func(r *http.Request) (*keygate.Identity, error) {
		// Stand-in for the verified header: the organization id in a header.
		return &keygate.Identity{OrganizationID: r.Header.Get("X-Test-Org")}, nil
	})
	as := func(org, method, path, body string) response { return doAs(t, h, org, method, path, body) }

	res := as("org_a", "POST", "/api/v1/attendees", `{"name": "Kim Park", "email": "kim@example.com", "event_id": 3, "company": "Sonoran Bloom", "ticket_type": "press"}`)
	var created struct{ Data Attendee }
	res.decode(t, &created)
	a := created.Data
	if res.status != http.StatusCreated || a.ID != len(seedAttendees)+1 || a.Name != "Kim Park" || a.EventID != 3 ||
		a.TicketType != "press" || a.Status != "registered" || a.Code == "" || a.CreatedAt.IsZero() {
		t.Fatalf("create: %d %s", res.status, res.body)
	}

	var listA, listB attendeeList
	as("org_a", "GET", "/api/v1/attendees", "").decode(t, &listA)
	as("org_b", "GET", "/api/v1/attendees", "").decode(t, &listB)
	if listA.Meta.Total != len(seedAttendees)+1 || listA.Data[len(listA.Data)-1].Email != "kim@example.com" {
		t.Fatalf("org_a sees %+v", listA)
	}
	if listB.Meta.Total != len(seedAttendees) {
		t.Fatalf("org_b sees %d attendees, want only the %d seeded", listB.Meta.Total, len(seedAttendees))
	}
	for _, x := range listB.Data {
		if x.Email == "kim@example.com" {
			t.Fatal("org_b sees org_a's attendee")
		}
	}

	// Unique per organization and event, not across organizations.
	dup := `{"name": "Kim Park", "email": "KIM@example.com", "event_id": "3"}`
	as("org_a", "POST", "/api/v1/attendees", dup).expect(t, http.StatusUnprocessableEntity,
		`{"errors":{"email":["The email has already been taken."]},"message":"The email has already been taken."}`)
	if res := as("org_b", "POST", "/api/v1/attendees", dup); res.status != http.StatusCreated {
		t.Fatalf("org_b adding the same person: %d %s", res.status, res.body)
	}
}

func doAs(t *testing.T, h http.Handler, org, method, path, body string) response {
	t.Helper()
	req := newRequest(method, path, body)
	req.Header.Set("X-Test-Org", org)
	return serve(h, req)
}

func TestAttendeeValidation(t *testing.T) {
	h := eventsFor(demoIdentity)
	for body, want := range map[string]string{
		`{}`: `{"errors":{"email":["The email field is required."],"event_id":["The event id field is required."],"name":["The name field is required."]},"message":"The name field is required. (and 2 more errors)"}`,
		`{"name": "A", "email": "a@example.com", "event_id": 99}`:                            `{"errors":{"event_id":["The selected event id is invalid."]},"message":"The selected event id is invalid."}`,
		`{"name": "A", "email": "a@example.com", "event_id": 1.5}`:                           `{"errors":{"event_id":["The event id field must be an integer."]},"message":"The event id field must be an integer."}`,
		`{"name": "A", "email": "a@example.com", "event_id": 1, "ticket_type": "backstage"}`: `{"errors":{"ticket_type":["The selected ticket type is invalid."]},"message":"The selected ticket type is invalid."}`,
		`{"name": "A", "email": "a@example.com", "event_id": 1, "company": 7}`:               `{"errors":{"company":["The company field must be a string."]},"message":"The company field must be a string."}`,
		`not json`: `{"errors":{"body":["The request body must be a valid JSON object."]},"message":"The request body must be a valid JSON object."}`,
	} {
		do(t, h, "POST", "/api/v1/attendees", body).expect(t, http.StatusUnprocessableEntity, want)
	}
	if l := listAttendeesOf(t, h, ""); l.Meta.Total != len(seedAttendees) {
		t.Fatalf("refused attendees were kept: total %d", l.Meta.Total)
	}
}

func TestAttendeesPagination(t *testing.T) {
	h := eventsFor(demoIdentity)
	for i := range 20 {
		body := fmt.Sprintf(`{"name": "Guest %d", "email": "guest%d@example.com", "event_id": 1}`, i, i)
		if res := do(t, h, "POST", "/api/v1/attendees", body); res.status != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i, res.status, res.body)
		}
	}
	total := len(seedAttendees) + 20
	l := listAttendeesOf(t, h, "")
	if len(l.Data) != defaultAttendeesPerPage || l.Meta.Total != total || l.Meta.LastPage != 2 || l.Meta.CurrentPage != 1 {
		t.Fatalf("page 1: %d items, meta %+v", len(l.Data), l.Meta)
	}
	l = listAttendeesOf(t, h, "page=2")
	if len(l.Data) != total-defaultAttendeesPerPage || l.Data[0].ID != defaultAttendeesPerPage+1 {
		t.Fatalf("page 2: %d items starting at %d", len(l.Data), l.Data[0].ID)
	}
	// Laravel's paginator is lenient: unusable values fall back to defaults.
	l = listAttendeesOf(t, h, "page=abc&per_page=1000")
	if l.Meta.CurrentPage != 1 || l.Meta.PerPage != MaxPerPage || len(l.Data) != total {
		t.Fatalf("lenient page: %+v", l.Meta)
	}
}

func TestWebhooks(t *testing.T) {
	h := EventsAPI(func(r *http.Request) (*keygate.Identity, error) {
		return &keygate.Identity{OrganizationID: r.Header.Get("X-Test-Org")}, nil
	})
	res := doAs(t, h, "org_a", "POST", "/api/v1/webhooks", `{"url": "https://hooks.example.com/canskan", "events": ["attendee.created", "attendee.checked_in"]}`)
	var created struct{ Data Webhook }
	res.decode(t, &created)
	hook := created.Data
	if res.status != http.StatusCreated || hook.ID != 1 || !strings.HasPrefix(hook.Secret, "whsec_") || !hook.Active || len(hook.Events) != 2 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}

	// The signing secret is shown once.
	res = doAs(t, h, "org_a", "GET", "/api/v1/webhooks", "")
	if res.status != http.StatusOK || strings.Contains(res.body, "whsec_") || !strings.Contains(res.body, `"url":"https://hooks.example.com/canskan"`) {
		t.Fatalf("list: %d %s", res.status, res.body)
	}
	doAs(t, h, "org_b", "GET", "/api/v1/webhooks", "").expect(t, http.StatusOK, `{"data":[]}`)

	// Another organization cannot delete it.
	doAs(t, h, "org_b", "DELETE", "/api/v1/webhooks/1", "").expect(t, http.StatusNotFound, `{"message": "Not Found."}`)
	if res := doAs(t, h, "org_a", "DELETE", "/api/v1/webhooks/1", ""); res.status != http.StatusNoContent || res.body != "" {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	doAs(t, h, "org_a", "DELETE", "/api/v1/webhooks/1", "").expect(t, http.StatusNotFound, `{"message": "Not Found."}`)
	doAs(t, h, "org_a", "DELETE", "/api/v1/webhooks/abc", "").expect(t, http.StatusNotFound, `{"message": "Not Found."}`)
	doAs(t, h, "org_a", "GET", "/api/v1/webhooks", "").expect(t, http.StatusOK, `{"data":[]}`)
}

func TestWebhookValidation(t *testing.T) {
	h := eventsFor(demoIdentity)
	for body, want := range map[string]string{
		`{}`: `{"errors":{"events":["The events field is required."],"url":["The url field is required."]},"message":"The url field is required. (and 1 more error)"}`,
		`{"url": "ftp://example.com/x", "events": []}`:                                       `{"errors":{"events":["The events field is required."],"url":["The url field must be a valid URL."]},"message":"The url field must be a valid URL. (and 1 more error)"}`,
		`{"url": "not a url", "events": "attendee.created"}`:                                 `{"errors":{"events":["The events field must be an array of strings."],"url":["The url field must be a valid URL."]},"message":"The url field must be a valid URL. (and 1 more error)"}`,
		`{"url": "https://example.com", "events": ["attendee.created", "token.stolen"]}`:     `{"errors":{"events.1":["The selected events.1 is invalid."]},"message":"The selected events.1 is invalid."}`,
		`{"url": "https://example.com", "events": ["attendee.created", "attendee.created"]}`: `{"errors":{"events.1":["The events.1 field has a duplicate value."]},"message":"The events.1 field has a duplicate value."}`,
	} {
		do(t, h, "POST", "/api/v1/webhooks", body).expect(t, http.StatusUnprocessableEntity, want)
	}

	ok := `{"url": "https://example.com/hook", "events": ["attendee.created"]}`
	for i := range maxWebhooksPerOrg {
		if res := do(t, h, "POST", "/api/v1/webhooks", ok); res.status != http.StatusCreated {
			t.Fatalf("webhook %d: %d %s", i, res.status, res.body)
		}
	}
	do(t, h, "POST", "/api/v1/webhooks", ok).expect(t, http.StatusUnprocessableEntity,
		fmt.Sprintf(`{"errors":{"url":["An organization may have at most %d webhooks."]},"message":"An organization may have at most %d webhooks."}`, maxWebhooksPerOrg, maxWebhooksPerOrg))
}

func TestConcurrentWrites(t *testing.T) {
	h := EventsAPI(func(r *http.Request) (*keygate.Identity, error) {
		return &keygate.Identity{OrganizationID: r.Header.Get("X-Test-Org")}, nil
	})
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			org := fmt.Sprintf("org_%d", i%2)
			doAs(t, h, org, "POST", "/api/v1/attendees", fmt.Sprintf(`{"name": "P%d", "email": "p%d@example.com", "event_id": 1}`, i, i))
			doAs(t, h, org, "GET", "/api/v1/attendees", "")
			do(t, h, "POST", "/events/1/register", fmt.Sprintf(`{"name": "P%d", "email": "p%d@example.com"}`, i, i))
		})
	}
	wg.Wait()
	for _, org := range []string{"org_0", "org_1"} {
		var l attendeeList
		doAs(t, h, org, "GET", "/api/v1/attendees?per_page=100", "").decode(t, &l)
		seen := map[int]bool{}
		for _, a := range l.Data {
			if seen[a.ID] {
				t.Fatalf("%s: attendee id %d used twice", org, a.ID)
			}
			seen[a.ID] = true
		}
		if l.Meta.Total != len(seedAttendees)+n/2 {
			t.Fatalf("%s: %d attendees, want %d", org, l.Meta.Total, len(seedAttendees)+n/2)
		}
	}
}

func TestEventsUnknownRoute(t *testing.T) {
	h := eventsFor(demoIdentity)
	for _, c := range []struct{ method, path string }{{"GET", "/"}, {"GET", "/api/v1/events"}, {"PUT", "/api/v1/webhooks/1"}, {"DELETE", "/api/v1/webhooks"}} {
		do(t, h, c.method, c.path, "").expect(t, http.StatusNotFound, `{"message": "Not Found."}`)
	}
}
