package gateway

import (
	"net/http"
	"strconv"
)

// Headers that carry a refusal for proxies that cannot relay one
// themselves. nginx's auth_request passes only 2xx, 401 and 403 from the
// auth service (anything else becomes its own 500) and never its body, so
// keygate's nginx recipe asks with ?refusal=headers: the refusal then
// answers 401 or 403 and carries the preset's real status and exact body
// here, and a named location returns them to the client.
const (
	HeaderRefusalStatus = "X-Keygate-Status"
	HeaderRefusalBody   = "X-Keygate-Body"
)

// wantsRefusalInHeaders reports whether the proxy asked for refusals in
// headers (GET /_keygate/auth…?refusal=headers).
func wantsRefusalInHeaders(r *http.Request) bool {
	return r.URL.RawQuery != "" && r.URL.Query().Get("refusal") == "headers"
}

// failInHeaders answers err as fail does, but with the preset's status and
// body in headers under a status nginx's auth_request relays. It returns
// the preset's status, which is what metrics and usage count.
func (g *Gateway) failInHeaders(w http.ResponseWriter, err error) int {
	status, body := g.preset.Render(err)
	h := w.Header()
	h.Set(HeaderRefusalStatus, strconv.Itoa(status))
	h.Set(HeaderRefusalBody, string(body))
	h["Cache-Control"] = noStore
	h.Set("Content-Length", "0")
	if status == http.StatusUnauthorized {
		w.WriteHeader(http.StatusUnauthorized)
	} else {
		w.WriteHeader(http.StatusForbidden)
	}
	return status
}
