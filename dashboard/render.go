package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/manage"
)

// pages holds one template set per page, each the layout plus the page.
type pages map[string]*template.Template

var funcs = template.FuncMap{
	"date": func(t time.Time) string { return t.UTC().Format("Jan 2, 2006") },
	"datetime": func(t time.Time) string {
		return t.UTC().Format("Jan 2, 2006 15:04 UTC")
	},
	"iso":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"number": formatNumber,
	"join":   strings.Join,
	"path":   url.PathEscape,
	// endpoint names a webhook endpoint by host and path, leaving out a
	// query that may hold the receiver's secret.
	"endpoint": endpointLabel,
}

// parsedPages parses the pages on first use, not when the dashboard is
// made: the parsed set is over half of a gateway's live heap (1.3 of
// 2.5 MB), which the garbage collector marks on every cycle, and an
// instance that serves only API traffic never renders a page. The
// templates are embedded, and a test parses every one.
var parsedPages = sync.OnceValue(mustParsePages)

func mustParsePages() pages {
	out := pages{}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	// Files named partial_* hold pieces shared by several pages.
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" || strings.HasPrefix(base, "partial_") {
			continue
		}
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/partial_*.html", name))
		out[strings.TrimSuffix(base, ".html")] = t
	}
	return out
}

// frame is what every page's layout needs: who is logged in, the form
// token, the organization being looked at and the switcher's choices.
type frame struct {
	Title   string
	User    *keygate.User
	CSRF    string
	Org     *manage.Access
	Orgs    []*manage.Access
	Section string // the highlighted sidebar entry
	Notice  string // one-line confirmation after a redirect
}

// render writes the named page with status. The page is rendered to a
// buffer first so a template failure becomes a clean 500, not half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	t, ok := parsedPages()[name]
	if !ok {
		h.fail(w, r, fmt.Errorf("dashboard: no page %q", name))
		return
	}
	if err := t.Execute(&buf, data); err != nil {
		h.fail(w, r, fmt.Errorf("dashboard: rendering %s: %w", name, err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	// Pages carry CSRF tokens, and one carries a new token's secret: no
	// copy may stay in any cache.
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail logs an unexpected error and answers a plain 500 page.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	// An invitation link's path is its secret: it is never logged.
	path := r.URL.Path
	if strings.HasPrefix(path, manage.InvitationPathPrefix) {
		path = manage.InvitationPathPrefix + "…"
	}
	h.d.Logger.ErrorContext(r.Context(), "dashboard request failed", "method", r.Method, "path", path, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte("Something went wrong. Try again; if it keeps happening, check keygate's logs.\n"))
}

type errorPage struct {
	frame
	Status  int
	Heading string
	Message string
}

// showError answers err as a page in the layout: keygate errors with their
// status and message, anything else as a logged 500.
func (h *Handler) showError(w http.ResponseWriter, r *http.Request, f *frame, err error) {
	e := keygate.AsError(err)
	status := keygate.HTTPStatus(e.Code)
	if status >= 500 {
		h.fail(w, r, err)
		return
	}
	heading := http.StatusText(status)
	switch status {
	case http.StatusNotFound:
		heading = "Not found"
	case http.StatusForbidden:
		heading = "Not allowed"
	}
	p := errorPage{Status: status, Heading: heading, Message: e.Message}
	if f != nil {
		p.frame = *f
	}
	p.Title = heading
	h.render(w, r, status, "error", p)
}

// formError returns the message to show beside a form for err, and the
// status to answer with; ok is false for errors that are not the
// caller's, which the caller shows as an error page instead.
func formError(err error) (status int, message string, ok bool) {
	e := keygate.AsError(err)
	switch e.Code {
	case keygate.EINVALID, keygate.ECONFLICT:
		return keygate.HTTPStatus(e.Code), e.Message, true
	}
	return 0, "", false
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	var f *frame
	if s, u, err := h.d.Sessions.Current(r); err == nil {
		f = &frame{User: u, CSRF: s.CSRFToken}
	}
	h.showError(w, r, f, keygate.Errorf(keygate.ENOTFOUND, "There is no page at %s.", r.URL.Path))
}

// redirect sends the browser to a page with a GET (303 after a POST).
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// formatNumber writes n with thousands separators.
func formatNumber(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + formatNumber(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
