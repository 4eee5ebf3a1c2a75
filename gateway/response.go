package gateway

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate"
	"golang.org/x/net/http/httpguts"
)

// hopByHopHeaders belong to one connection and are never passed on
// (RFC 9110 section 7.6.1), nor are the headers Connection names.
var hopByHopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// isHopByHop reports whether the canonical field name is one of
// hopByHopHeaders.
func isHopByHop(name string) bool {
	return slices.Contains(hopByHopHeaders, name)
}

// isHopByHopFor reports whether the canonical field name is hop-by-hop in
// a message whose Connection fields hold the values connection: one of
// hopByHopHeaders, or a name Connection lists (ASCII case folded, as
// net/http reads Connection).
func isHopByHopFor(connection []string, name string) bool {
	return isHopByHop(name) || httpguts.HeaderValuesContainsToken(connection, name)
}

func removeHopByHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	trailers := headerValuesContainToken(h["Te"], "trailers")
	for _, name := range hopByHopHeaders {
		delete(h, name)
	}
	if trailers {
		// The only TE a proxy passes on: the client accepts trailers.
		h["Te"] = []string{"trailers"}
	}
}

// isUpgrade reports whether the client asks to switch protocols, which
// hands its connection to the upstream. Never to HTTP/2 cleartext (h2c):
// every later stream on that connection would reach the upstream
// unchecked. Such a request goes on as an ordinary one, its Upgrade
// dropped with the other hop-by-hop headers.
func isUpgrade(h http.Header) bool {
	return h.Get("Upgrade") != "" && headerValuesContainToken(h["Connection"], "Upgrade") && !headerValuesContainToken(h["Upgrade"], "h2c")
}

// setForwardedHeaders replaces what the client said about earlier hops
// with what keygate saw, as httputil.ProxyRequest.SetXForwarded does.
func setForwardedHeaders(o *outHeader, r *http.Request) {
	delete(o.h, "Forwarded")
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		o.setOne("X-Forwarded-For", ip)
	} else {
		delete(o.h, "X-Forwarded-For")
	}
	o.setOne("X-Forwarded-Host", r.Host)
	o.setOne("X-Forwarded-Proto", proto)
}

// forwardHeaderRoom is how many headers keygate may add to a client's
// request on its way upstream: the X-Forwarded trio, X-Real-IP, the four
// identity headers, TE and trace context. Pooled header maps are made
// with room for them beside the client's own.
const forwardHeaderRoom = 11

// outHeader is the header of one request on its way upstream: a copy of
// the client's that keygate's rules then edit. Its map and the array of
// its values are pooled, since every forwarded request needs them only
// until its head is written.
type outHeader struct {
	h      http.Header
	values []string
	// own holds the values keygate sets itself, one per header
	// (X-Forwarded-For, -Host, -Proto and X-Real-IP), so that setting
	// them allocates nothing; used counts those handed out.
	own  [4]string
	used int
}

// setOne sets the header name to the single value v, kept in o's own
// array while it has room. The slice is capped: an append (by any later
// rule) copies rather than writing over the next header's value.
func (o *outHeader) setOne(name, v string) {
	if o.used == len(o.own) {
		o.h[name] = []string{v}
		return
	}
	one := o.own[o.used : o.used+1 : o.used+1]
	one[0] = v
	o.used++
	o.h[name] = one
}

var outHeaders = sync.Pool{New: func() any { return &outHeader{h: make(http.Header, 16+forwardHeaderRoom)} }}

// Pooled headers larger than these are left to the garbage collector, so
// one request with many headers does not keep a large map alive.
const (
	maxPooledHeaderNames  = 64
	maxPooledHeaderValues = 256
)

// cloneHeader copies h into a pooled outHeader, as http.Header.Clone
// would; release returns it once nothing reads it any more.
func cloneHeader(h http.Header) *outHeader {
	o := outHeaders.Get().(*outHeader)
	n := 0
	for _, vv := range h {
		n += len(vv)
	}
	if cap(o.values) < n {
		o.values = make([]string, n)
	}
	o.values = o.values[:n]
	all := o.values
	for k, vv := range h {
		if vv == nil {
			o.h[k] = nil
			continue
		}
		// Capped: an append (by any later rule) copies rather than
		// writing over the next name's values.
		n := copy(all, vv)
		o.h[k] = all[:n:n]
		all = all[n:]
	}
	return o
}

// release empties o (no header of this request stays reachable from the
// pool) and returns it to the pool.
func (o *outHeader) release() {
	if len(o.h) > maxPooledHeaderNames || cap(o.values) > maxPooledHeaderValues {
		return
	}
	clear(o.h)
	clear(o.values)
	clear(o.own[:o.used])
	o.used = 0
	outHeaders.Put(o)
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyResponse writes the upstream's response to w: status, end-to-end
// headers, the body as it arrives (flushed at once for streams: server-sent
// events and bodies of unknown length), then trailers. A body the upstream
// breaks off aborts the client's response too, so the client does not take
// a truncated body for a whole one: copyResponse then returns the
// upstream's error, for the caller to log before it aborts. A client that
// stops reading is not an error.
func copyResponse(w http.ResponseWriter, resp *upstreamResponse) error {
	h := w.Header()
	set := keygateSet(h, make([]string, 0, 8))
	contentType := resp.passHeader(h, set)
	if trailer := resp.passedTrailer(set); len(trailer) > 0 {
		h.Add("Trailer", strings.Join(trailer, ", "))
	}
	w.WriteHeader(resp.status)

	stream := resp.contentLength == -1 || strings.HasPrefix(contentType, "text/event-stream")
	rc := http.NewResponseController(w)
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		n, err := resp.body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				resp.finish(false)
				return nil
			}
			if stream {
				rc.Flush()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			resp.finish(false)
			return err
		}
	}
	for _, f := range resp.trailers {
		if trailerPasses(set, resp.connection, f.name) {
			h.Add(http.TrailerPrefix+f.name, f.value)
		}
	}
	resp.finish(true)
	return nil
}

// headerValuesContainToken reports whether the comma-separated values hold
// token, compared without case.
func headerValuesContainToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// A header keygate sets on a response it forwards is keygate's word: the
// X-RateLimit-* of the limit it applied, the MCP endpoint's
// Access-Control-Allow-Origin. The upstream's fields of the same name, in
// any spelling, are not passed beside it: a client reading two
// X-RateLimit-Remaining values (or a browser two Access-Control-Allow-
// Origin values, which fails CORS) could not tell which is keygate's.
//
// The same holds for the upstream's trailers, announced in Trailer or
// not: a client may merge trailer fields into the header (RFC 9110
// section 6.5.2 lets it when the field's definition allows), and net/http's
// server sends a name announced in Trailer with whatever the handler's
// header holds under it, keygate's own value included.
//
// keygateSet lists, into names, the names keygate set in the client's
// header h before any of the upstream's fields were added.
func keygateSet(h http.Header, names []string) []string {
	for name := range h {
		names = append(names, name)
	}
	return names
}

// yieldsToKeygate reports whether the upstream's field name is left out
// because keygate set it (set is from keygateSet).
func yieldsToKeygate(set []string, name string) bool {
	for _, s := range set {
		if keygate.EqualFoldASCII(s, name) {
			return !combinedFields[http.CanonicalHeaderKey(name)]
		}
	}
	return false
}

// trailerPasses reports whether the upstream's trailer field name reaches
// the client, announced in Trailer or sent after the body: not if keygate
// set the name (set is from keygateSet), nor if RFC 9110 section 6.5.1
// keeps it out of trailers. Framing, routing, connection management,
// authentication, request modifiers, response controls and content
// format must be known before the content; a client that merged such a
// trailer into the header would take the upstream's late word on how a
// body it already read was framed, encoded or may be cached. net/http's
// server does not announce these names itself, but sends the Trailer
// field as the handler wrote it and sends any name set as a trailer, so
// they are dropped here: net/http's list (httpguts.ValidTrailerHeader),
// keygate's hop-by-hop names and those the upstream's Connection fields
// (whose values connection holds) list, which are hop-by-hop for this
// response (RFC 9110 section 7.6.1), its trailers included.
func trailerPasses(set, connection []string, name string) bool {
	return !yieldsToKeygate(set, name) && httpguts.ValidTrailerHeader(name) && !isHopByHopFor(connection, http.CanonicalHeaderKey(name))
}

// combinedFields are lists to which keygate adds members and the upstream
// others, all of which the client needs: keygate's value does not replace
// the upstream's. The MCP endpoint exposes its headers to browsers and
// the upstream may expose more (Access-Control-Expose-Headers); keygate
// sets no Vary or Set-Cookie on forwarded responses today, but should it,
// the upstream's must stay, or caches serve the wrong variant and clients
// lose their sessions. Cache-Control is not here: keygate would set it
// only to forbid storing, which the upstream must not loosen.
var combinedFields = map[string]bool{
	"Access-Control-Expose-Headers": true,
	"Set-Cookie":                    true,
	"Vary":                          true,
}
