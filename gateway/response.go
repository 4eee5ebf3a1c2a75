package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// hopByHopHeaders belong to one connection and are never passed on
// (RFC 9110 section 7.6.1), nor are the headers Connection names.
var hopByHopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
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

func isUpgrade(h http.Header) bool {
	return h.Get("Upgrade") != "" && headerValuesContainToken(h["Connection"], "Upgrade")
}

// setForwardedHeaders replaces what the client said about earlier hops
// with what keygate saw, as httputil.ProxyRequest.SetXForwarded does.
func setForwardedHeaders(h http.Header, r *http.Request) {
	delete(h, "Forwarded")
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	// One array holds the three values: a request's headers are built
	// with as few allocations as they can be.
	v := [...]string{"", r.Host, proto}
	vs := v[:]
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		vs[0] = ip
		h["X-Forwarded-For"] = vs[0:1:1]
	} else {
		delete(h, "X-Forwarded-For")
	}
	h["X-Forwarded-Host"] = vs[1:2:2]
	h["X-Forwarded-Proto"] = vs[2:3:3]
}

// forwardHeaderRoom is how many headers keygate may add to a client's
// request on its way upstream: the X-Forwarded trio, X-Real-IP, the four
// identity headers, TE and trace context.
const forwardHeaderRoom = 11

// cloneHeader is http.Header.Clone with room for extra more names, so
// adding keygate's headers does not grow the map: the values share one
// array, as Clone's do.
func cloneHeader(h http.Header, extra int) http.Header {
	n := 0
	for _, vv := range h {
		n += len(vv)
	}
	all := make([]string, n)
	out := make(http.Header, len(h)+extra)
	for k, vv := range h {
		if vv == nil {
			out[k] = nil
			continue
		}
		n := copy(all, vv)
		out[k] = all[:n:n]
		all = all[n:]
	}
	return out
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyResponse writes the upstream's response to w: status, end-to-end
// headers, the body as it arrives (flushed at once for streams: server-sent
// events and bodies of unknown length), then trailers. A body the upstream
// breaks off aborts the client's response too, so the client does not take
// a truncated body for a whole one.
func copyResponse(w http.ResponseWriter, resp *upstreamResponse) {
	h := w.Header()
	removeHopByHopHeaders(resp.Header)
	delete(resp.Header, "Te") // a request header: "TE: trailers" passes only that way
	for name, values := range resp.Header {
		if prev, ok := h[name]; ok {
			h[name] = append(prev, values...)
		} else {
			// The response's own slice: nothing else holds it.
			h[name] = values
		}
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for name := range resp.Trailer {
			names = append(names, name)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	stream := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	rc := http.NewResponseController(w)
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		n, err := resp.Body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				resp.finish(false)
				return
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
			panic(http.ErrAbortHandler)
		}
	}
	resp.finish(true)
	for name, values := range resp.Trailer {
		for _, v := range values {
			h.Add(http.TrailerPrefix+name, v)
		}
	}
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
