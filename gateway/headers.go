package gateway

import (
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/keygate/keygate"
)

// What the upstream sees of a client's headers. The upstream trusts
// keygate's word on who is calling, so nothing a client sends may look
// like that word, and no API credential may travel past keygate.
//
// Header names are compared after folding case and "_" to "-": net/http
// canonicalises names but keeps underscores, and many frameworks (WSGI,
// PHP, CGI, nginx's underscores_in_headers) read X_Keygate_Org and
// X-Keygate-Org as the same variable.

// clientAddressHeaders name the client's address when a proxy sets them.
// Only keygate says who the client is: a client's copy never passes, and
// keygate sets X-Real-IP itself.
var clientAddressHeaders = []string{"X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "X-Client-IP"}

// headerRealIP carries the client's address as keygate resolved it
// (trusted_proxies honoured).
const headerRealIP = "X-Real-IP"

// realIPKey is headerRealIP as http.Header keys it ("X-Real-Ip").
var realIPKey = http.CanonicalHeaderKey(headerRealIP)

// upstreamHeaders keeps the header rules of one API.
type upstreamHeaders struct {
	tokenHeader string
	prefixes    []string
}

func newUpstreamHeaders(api *keygate.API) *upstreamHeaders {
	return &upstreamHeaders{tokenHeader: api.Preset.TokenHeader, prefixes: api.TokenPrefixes()}
}

// scrub removes from h, in place, every header a client sent that the
// upstream could take for keygate's: any spelling of an X-Keygate-* header
// or of the API's token header, the client-address headers, and every
// header that carries a well-formed token of this API (a valid token in
// Authorization beside X-Token, in a cookie, or Basic-encoded).
func (u *upstreamHeaders) scrub(h http.Header) {
	for name, values := range h {
		if u.drops(name, values) {
			delete(h, name)
		}
	}
}

func (u *upstreamHeaders) drops(name string, values []string) bool {
	if keygate.HeaderNameHasPrefix(name, keygate.HeaderPrefix) || keygate.HeaderNameIs(name, u.tokenHeader) {
		return true
	}
	for _, n := range clientAddressHeaders {
		if keygate.HeaderNameIs(name, n) {
			return true
		}
	}
	basic := keygate.HeaderNameIs(name, "Authorization") || keygate.HeaderNameIs(name, "Proxy-Authorization")
	for _, v := range values {
		if u.carriesToken(v) || basic && u.carriesBasicToken(v) {
			return true
		}
	}
	return false
}

// carriesToken reports whether v holds a well-formed token of this API
// anywhere, as a whole base62 run after one of its prefixes.
func (u *upstreamHeaders) carriesToken(v string) bool {
	for _, prefix := range u.prefixes {
		for rest := v; ; {
			i := strings.Index(rest, prefix)
			if i < 0 {
				break
			}
			end := i + len(prefix)
			for end < len(rest) && isBase62(rest[end]) {
				end++
			}
			if keygate.WellFormedToken(rest[i:end], prefix) {
				return true
			}
			rest = rest[i+len(prefix):]
		}
	}
	return false
}

// carriesBasicToken looks inside "Basic base64(user:password)", where
// clients of token APIs often put the token as user or password.
func (u *upstreamHeaders) carriesBasicToken(v string) bool {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	return u.carriesToken(string(raw))
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// setClientAddress tells the upstream the client's address as keygate
// resolved it, after scrub removed whatever the client claimed.
//
// When the client is the peer (no trusted proxy in between), the address
// text is taken from peer, the request's RemoteAddr, instead of formatting
// it again.
func setClientAddress(o *outHeader, client netip.Addr, peer string) {
	if !client.IsValid() {
		return
	}
	addr := ""
	if host, _, err := net.SplitHostPort(peer); err == nil && client.Is4() {
		if a, err := netip.ParseAddr(host); err == nil && a == client {
			addr = host
		}
	}
	if addr == "" {
		addr = client.String()
	}
	o.setOne(realIPKey, addr)
}

// overridesMethod reports whether req asks the upstream for another method
// than req.Method, which is the one its route was chosen and checked for:
// by a method override header, in any spelling, or by the _method query
// parameter that Laravel and Symfony read on a POST (under PHP's names:
// ".method" and " method" are "_method" too). Naming the request's own
// method is no override.
func overridesMethod(req Request) bool {
	if !allNameMethod(keygate.MethodOverrides(req.Header), req.Method) {
		return true
	}
	raw := req.URL.RawQuery
	if !strings.Contains(raw, "method") && !strings.Contains(raw, "%") {
		return false
	}
	for rest := raw; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		k, v, _ := strings.Cut(pair, "=")
		if strings.Contains(k, "%") || strings.Contains(k, "+") {
			if key, err := url.QueryUnescape(k); err == nil {
				k = key
			}
		}
		if len(k) != len("_method") || k[1:] != "method" || !strings.ContainsRune("_. [", rune(k[0])) {
			continue
		}
		if value, err := url.QueryUnescape(v); err != nil || !allNameMethod([]string{value}, req.Method) {
			return true
		}
	}
	return false
}

// allNameMethod reports whether every value names method, in ASCII
// letters of either case: "poſt" (long s) is no spelling of POST.
func allNameMethod(values []string, method string) bool {
	for _, v := range values {
		if !keygate.EqualFoldASCII(strings.TrimSpace(v), method) {
			return false
		}
	}
	return true
}
