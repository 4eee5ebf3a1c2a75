package demo

import "time"

// The events dataset: a few fictional industry events, the public profiles
// their QR badges point to, and the attendees every organization starts with.

// Event is an event people register for and check in to.
type Event struct {
	ID       int       `json:"id"`
	Name     string    `json:"name"`
	Venue    string    `json:"venue"`
	City     string    `json:"city"`
	State    string    `json:"state"`
	StartsAt time.Time `json:"starts_at"`
}

// Profile is what scanning someone's QR code shows: only what its owner
// chose to make public.
type Profile struct {
	Code     string            `json:"code"`
	Name     string            `json:"name"`
	Title    string            `json:"title"`
	Company  string            `json:"company"`
	Bio      string            `json:"bio"`
	Location string            `json:"location"`
	Links    map[string]string `json:"links"`
}

// DemoProfileCode is the profile the CANSKAN docs scan in their example.
const DemoProfileCode = "abc123def456"

var events = []Event{
	{1, "Cannabis Industry Expo 2026", "Las Vegas Convention Center", "Las Vegas", stateNevada, time.Date(2026, 11, 18, 9, 0, 0, 0, time.UTC)},
	{2, "Emerald Harvest Ball", "Sonoma County Fairgrounds", "Santa Rosa", stateCalifornia, time.Date(2026, 12, 12, 10, 0, 0, 0, time.UTC)},
	{3, "Great Lakes Cannabis Summit", "Huntington Place", "Detroit", stateMichigan, time.Date(2027, 3, 4, 9, 30, 0, 0, time.UTC)},
}

var profiles = map[string]Profile{
	DemoProfileCode: {
		Code: DemoProfileCode, Name: "Maya Thompson", Title: "Director of Retail Partnerships",
		Company: "Demo Dispensary Group", Location: "Denver, CO",
		Bio:   "Builds wholesale relationships between craft growers and dispensaries across the Mountain West.",
		Links: map[string]string{"website": "https://example.com/maya", "linkedin": "https://www.linkedin.com/in/example-maya"},
	},
	"f0e1d2c3b4a5": {
		Code: "f0e1d2c3b4a5", Name: "Luis Ortega", Title: "Head Grower",
		Company: "Pacific Reserve", Location: "Santa Rosa, CA",
		Bio:   "Sun-grown flower, regenerative soil, and too many tomato plants.",
		Links: map[string]string{"website": "https://example.com/luis"},
	},
	"9a8b7c6d5e4f": {
		Code: "9a8b7c6d5e4f", Name: "Priya Raman", Title: "Compliance Lead",
		Company: "Great Lakes Growers", Location: "Ann Arbor, MI",
		Bio:   "Seed-to-sale tracking, lab testing and packaging rules in Michigan and Illinois.",
		Links: map[string]string{"linkedin": "https://www.linkedin.com/in/example-priya"},
	},
	"1c2d3e4f5a6b": {
		Code: "1c2d3e4f5a6b", Name: "Jordan Blake", Title: "Founder",
		Company: "Hudson Craft", Location: "Albany, NY",
		Bio:   "Small-batch flower for New York's adult-use market.",
		Links: map[string]string{},
	},
}

// seedRegistration is a registration every event starts with, so check-in
// can be tried without registering first.
type seedRegistration struct {
	EventID     int
	Name, Email string
	Code        string
}

var seedRegistrations = []seedRegistration{
	{1, "Maya Thompson", "maya@example.com", "reg1a2b3c4d5"},
	{1, "Luis Ortega", "luis@example.com", "reg6e7f8a9b0"},
	{2, "Priya Raman", "priya@example.com", "regc1d2e3f4a"},
	{3, "Jordan Blake", "jordan@example.com", "reg5b6c7d8e9"},
}

// seedAttendees are the attendees every organization's list starts with.
var seedAttendees = []Attendee{
	{EventID: 1, Name: "Avery Chen", Email: "avery.chen@example.com", Company: "Golden Gate Greens", TicketType: "vip", Status: "checked_in", Code: "att0a1b2c3d4", CreatedAt: time.Date(2026, 9, 1, 15, 4, 0, 0, time.UTC)},
	{EventID: 1, Name: "Sam Rivera", Email: "sam.rivera@example.com", Company: "Mile High Dispensary", TicketType: "general", Status: "registered", Code: "att5e6f7a8b9", CreatedAt: time.Date(2026, 9, 3, 18, 30, 0, 0, time.UTC)},
	{EventID: 2, Name: "Noor Haddad", Email: "noor.haddad@example.com", Company: "Motor City Cannabis", TicketType: "exhibitor", Status: "registered", Code: "attc0d1e2f3a", CreatedAt: time.Date(2026, 9, 10, 12, 0, 0, 0, time.UTC)},
}
