package demo

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/keygate/keygate"
)

// Limits that keep the in-memory events data bounded however the public
// routes are used.
const (
	maxRegistrationsPerEvent = 10_000
	maxAttendeesPerOrg       = 10_000
	maxWebhooksPerOrg        = 20
	maxURLLength             = 2048
	defaultAttendeesPerPage  = 15
)

// WebhookEvents are the events a webhook may subscribe to.
var WebhookEvents = []string{"attendee.created", "attendee.checked_in", "registration.created"}

// Registration is a public sign-up for an event. Its code is the ticket
// shown at the door for check-in.
type Registration struct {
	ID           int        `json:"id"`
	EventID      int        `json:"event_id"`
	Name         string     `json:"name"`
	Email        string     `json:"email"`
	Code         string     `json:"code"`
	Status       string     `json:"status"`
	RegisteredAt time.Time  `json:"registered_at"`
	CheckedInAt  *time.Time `json:"checked_in_at"`
}

// Attendee is a person on an organization's attendee list.
type Attendee struct {
	ID         int       `json:"id"`
	EventID    int       `json:"event_id"`
	Name       string    `json:"name"`
	Email      string    `json:"email"`
	Company    string    `json:"company"`
	TicketType string    `json:"ticket_type"`
	Status     string    `json:"status"`
	Code       string    `json:"code"`
	CreatedAt  time.Time `json:"created_at"`
}

// Webhook is an organization's subscription to its events. The signing
// secret is returned only in the answer that creates it.
type Webhook struct {
	ID        int       `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Active    bool      `json:"active"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	secret    string
}

// Ticket types an attendee may hold.
var ticketTypes = []string{"general", "vip", "exhibitor", "press"}

// eventsAPI keeps the events API's data in memory: registrations per event
// (public) and attendees and webhooks per organization (token routes).
type eventsAPI struct {
	identity IdentityReader
	now      func() time.Time

	mu            sync.Mutex
	registrations map[int]*eventRegistrations
	orgs          map[string]*orgData
}

type eventRegistrations struct {
	byCode  map[string]*Registration
	byEmail map[string]*Registration
	nextID  int
}

// orgData is one organization's attendees and webhooks. Organizations
// never see each other's.
type orgData struct {
	attendees     []*Attendee
	webhooks      []*Webhook
	nextAttendee  int
	nextWebhookID int
}

// EventsAPI returns the demo events API, shaped like CANSKAN (Laravel):
//
//	GET    /p/{code}                   public profile behind a QR code
//	POST   /events/{id}/register       public registration {name, email}
//	POST   /events/{id}/checkin        public check-in {code}
//	GET    /api/v1/organization        the calling organization
//	GET    /api/v1/attendees           its attendees, paginated
//	POST   /api/v1/attendees           add one {name, email, event_id, company?, ticket_type?}
//	GET    /api/v1/webhooks            its webhooks
//	POST   /api/v1/webhooks            add one {url, events}
//	DELETE /api/v1/webhooks/{id}       remove one
//
// The /api/v1 routes need an identity; attendees and webhooks are kept per
// organization id, in memory, for the life of the handler.
func EventsAPI(identity IdentityReader) http.Handler {
	api := &eventsAPI{
		identity:      identity,
		now:           time.Now,
		registrations: map[int]*eventRegistrations{},
		orgs:          map[string]*orgData{},
	}
	for _, s := range seedRegistrations {
		regs := api.eventRegistrations(s.EventID)
		regs.nextID++
		r := &Registration{ID: regs.nextID, EventID: s.EventID, Name: s.Name, Email: s.Email, Code: s.Code, Status: "registered", RegisteredAt: time.Date(2026, 9, 1, 9, 0, 0, 0, time.UTC)}
		regs.byCode[r.Code], regs.byEmail[r.Email] = r, r
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /p/{code}", showProfile)
	mux.HandleFunc("POST /events/{id}/register", api.register)
	mux.HandleFunc("POST /events/{id}/checkin", api.checkIn)
	mux.Handle("GET /api/v1/organization", requireIdentity(identity, api.showOrganization))
	mux.Handle("GET /api/v1/attendees", requireIdentity(identity, api.listAttendees))
	mux.Handle("POST /api/v1/attendees", requireIdentity(identity, api.createAttendee))
	mux.Handle("GET /api/v1/webhooks", requireIdentity(identity, api.listWebhooks))
	mux.Handle("POST /api/v1/webhooks", requireIdentity(identity, api.createWebhook))
	mux.Handle("DELETE /api/v1/webhooks/{id}", requireIdentity(identity, api.deleteWebhook))
	mux.HandleFunc("/", notFound)
	return mux
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeRaw(w, http.StatusNotFound, `{"message": "Not Found."}`)
}

func showProfile(w http.ResponseWriter, r *http.Request) {
	p, ok := profiles[r.PathValue("code")]
	if !ok {
		notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": p})
}

// findEvent returns the event named by the {id} path value.
func findEvent(r *http.Request) (Event, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		return Event{}, false
	}
	for _, e := range events {
		if e.ID == id {
			return e, true
		}
	}
	return Event{}, false
}

// eventRegistrations returns the registrations of an event; the caller
// holds mu or is the constructor.
func (api *eventsAPI) eventRegistrations(eventID int) *eventRegistrations {
	regs := api.registrations[eventID]
	if regs == nil {
		regs = &eventRegistrations{byCode: map[string]*Registration{}, byEmail: map[string]*Registration{}}
		api.registrations[eventID] = regs
	}
	return regs
}

func (api *eventsAPI) register(w http.ResponseWriter, r *http.Request) {
	event, ok := findEvent(r)
	if !ok {
		notFound(w, r)
		return
	}
	f, ok := readForm(w, r)
	if !ok {
		return
	}
	v := &validation{}
	name := f.text(v, "name", true, 255)
	email := f.email(v, "email")
	if v.failed() {
		v.write(w)
		return
	}

	api.mu.Lock()
	defer api.mu.Unlock()
	regs := api.eventRegistrations(event.ID)
	if regs.byEmail[email] != nil {
		v.add("email", "The email has already been taken.")
	} else if len(regs.byCode) >= maxRegistrationsPerEvent {
		v.add("event", "Registration for this event is full.")
	}
	if v.failed() {
		v.write(w)
		return
	}
	regs.nextID++
	reg := &Registration{
		ID: regs.nextID, EventID: event.ID, Name: name, Email: email,
		Code: "reg" + randomHex(9), Status: "registered", RegisteredAt: api.now().UTC(),
	}
	regs.byCode[reg.Code], regs.byEmail[reg.Email] = reg, reg
	writeJSON(w, http.StatusCreated, map[string]any{"data": reg})
}

func (api *eventsAPI) checkIn(w http.ResponseWriter, r *http.Request) {
	event, ok := findEvent(r)
	if !ok {
		notFound(w, r)
		return
	}
	f, ok := readForm(w, r)
	if !ok {
		return
	}
	v := &validation{}
	code := f.text(v, "code", true, 64)
	if v.failed() {
		v.write(w)
		return
	}

	api.mu.Lock()
	defer api.mu.Unlock()
	reg := api.eventRegistrations(event.ID).byCode[code]
	switch {
	case reg == nil:
		v.add("code", "The selected code is invalid.")
		v.write(w)
		return
	case reg.CheckedInAt != nil:
		writeJSON(w, http.StatusConflict, map[string]any{"message": "This registration has already been checked in.", "data": reg})
		return
	}
	now := api.now().UTC()
	reg.Status, reg.CheckedInAt = "checked_in", &now
	writeJSON(w, http.StatusOK, map[string]any{"data": reg})
}

// org returns the data of the calling organization, starting it with the
// demo attendees on first use. The caller holds mu.
func (api *eventsAPI) org(id *keygate.Identity) *orgData {
	d := api.orgs[id.OrganizationID]
	if d == nil {
		d = &orgData{}
		for _, a := range seedAttendees {
			d.nextAttendee++
			a.ID = d.nextAttendee
			d.attendees = append(d.attendees, &a)
		}
		api.orgs[id.OrganizationID] = d
	}
	return d
}

func (api *eventsAPI) showOrganization(w http.ResponseWriter, _ *http.Request, id *keygate.Identity) {
	api.mu.Lock()
	d := api.org(id)
	attendees, webhooks := len(d.attendees), len(d.webhooks)
	api.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"id":              id.OrganizationID,
		"slug":            id.OrganizationSlug,
		"plan":            id.Plan,
		"entitlements":    id.Entitlements,
		"scopes":          id.Scopes,
		"attendees_count": attendees,
		"webhooks_count":  webhooks,
	}})
}

// listAttendees answers a page like Laravel's paginator: lenient about
// `page` and `per_page`, which fall back to their defaults when unusable.
func (api *eventsAPI) listAttendees(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	q := r.URL.Query()
	number := lenientInt(q, "page", 1, 1, 1<<31-1)
	perPage := lenientInt(q, "per_page", defaultAttendeesPerPage, 1, MaxPerPage)

	api.mu.Lock()
	var list []Attendee
	for _, a := range api.org(id).attendees {
		list = append(list, *a)
	}
	api.mu.Unlock()

	p := paginate(list, number, perPage)
	writeJSON(w, http.StatusOK, map[string]any{
		"data": p.Data,
		"meta": map[string]int{
			"current_page": p.Page,
			"per_page":     p.PerPage,
			"total":        p.Total,
			"last_page":    max(p.TotalPages, 1),
		},
	})
}

func lenientInt(q url.Values, name string, def, lo, hi int) int {
	n, err := strconv.Atoi(q.Get(name))
	if err != nil || n < lo {
		return def
	}
	return min(n, hi)
}

func (api *eventsAPI) createAttendee(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	f, ok := readForm(w, r)
	if !ok {
		return
	}
	v := &validation{}
	a := Attendee{Status: "registered", TicketType: "general"}
	a.Name = f.text(v, "name", true, 255)
	a.Email = f.email(v, "email")
	if eventID, ok := f.integer(v, "event_id", true); ok {
		if !slices.ContainsFunc(events, func(e Event) bool { return e.ID == eventID }) {
			v.add("event_id", "The selected event id is invalid.")
		}
		a.EventID = eventID
	}
	a.Company = f.text(v, "company", false, 255)
	if t := f.text(v, "ticket_type", false, 32); t != "" {
		if !slices.Contains(ticketTypes, t) {
			v.add("ticket_type", "The selected ticket type is invalid.")
		}
		a.TicketType = t
	}
	if v.failed() {
		v.write(w)
		return
	}

	api.mu.Lock()
	defer api.mu.Unlock()
	d := api.org(id)
	for _, other := range d.attendees {
		if other.EventID == a.EventID && other.Email == a.Email {
			v.add("email", "The email has already been taken.")
			break
		}
	}
	if len(d.attendees) >= maxAttendeesPerOrg {
		v.add("email", fmt.Sprintf("An organization may have at most %d attendees.", maxAttendeesPerOrg))
	}
	if v.failed() {
		v.write(w)
		return
	}
	d.nextAttendee++
	a.ID, a.Code, a.CreatedAt = d.nextAttendee, "att"+randomHex(9), api.now().UTC()
	d.attendees = append(d.attendees, &a)
	writeJSON(w, http.StatusCreated, map[string]any{"data": a})
}

func (api *eventsAPI) listWebhooks(w http.ResponseWriter, _ *http.Request, id *keygate.Identity) {
	api.mu.Lock()
	list := []Webhook{}
	for _, h := range api.org(id).webhooks {
		list = append(list, *h)
	}
	api.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": list})
}

func (api *eventsAPI) createWebhook(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	f, ok := readForm(w, r)
	if !ok {
		return
	}
	v := &validation{}
	target := f.text(v, "url", true, maxURLLength)
	if target != "" {
		if u, err := url.Parse(target); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add("url", "The url field must be a valid URL.")
		}
	}
	subscribed := f.strings(v, "events", len(WebhookEvents))
	for i, e := range subscribed {
		if !slices.Contains(WebhookEvents, e) {
			v.add(fmt.Sprintf("events.%d", i), fmt.Sprintf("The selected events.%d is invalid.", i))
		}
	}
	if v.failed() {
		v.write(w)
		return
	}

	api.mu.Lock()
	defer api.mu.Unlock()
	d := api.org(id)
	if len(d.webhooks) >= maxWebhooksPerOrg {
		v.add("url", fmt.Sprintf("An organization may have at most %d webhooks.", maxWebhooksPerOrg))
		v.write(w)
		return
	}
	d.nextWebhookID++
	h := &Webhook{
		ID: d.nextWebhookID, URL: target, Events: subscribed, Active: true,
		CreatedAt: api.now().UTC(), secret: "whsec_" + randomBase64(24),
	}
	d.webhooks = append(d.webhooks, h)
	created := *h
	created.Secret = h.secret
	writeJSON(w, http.StatusCreated, map[string]any{"data": created})
}

func (api *eventsAPI) deleteWebhook(w http.ResponseWriter, r *http.Request, id *keygate.Identity) {
	webhookID, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		notFound(w, r)
		return
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	d := api.org(id)
	i := slices.IndexFunc(d.webhooks, func(h *Webhook) bool { return h.ID == webhookID })
	if i < 0 {
		notFound(w, r)
		return
	}
	d.webhooks = slices.Delete(d.webhooks, i, i+1)
	w.WriteHeader(http.StatusNoContent)
}

// randomHex returns n random lower-case hex characters.
func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func randomBase64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
