package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/keygate/keygate"
)

// keygate reads an upstream's response head itself rather than with
// http.ReadResponse, which builds a Response, a header map, a string per
// value and a textproto reader for every answer, only for keygate to copy
// the header into the client's response again. This reader keeps its
// buffers on the connection, turns the head into one string, and hands
// the client's header the upstream's end-to-end fields directly.
//
// It is never more lenient than net/http about framing: whatever it
// accepts, http.ReadResponse reads as the same status, the same body and
// the same decision about the connection (FuzzUpstreamResponseHead holds
// the two to that). It refuses more:
//
//   - a status line other than "HTTP/1.0" or "HTTP/1.1", one space, three
//     digits, then nothing or one space and a reason without control
//     characters (net/http takes any HTTP/x.y, spaces before the code, and
//     anything after it);
//   - obs-fold (a field line starting with a space or tab, which net/http
//     joins to the one before) and whitespace before a field's colon (which
//     net/http keeps in the name): RFC 9112 lets a proxy refuse both, and
//     they are how a field hides from one parser and not another;
//   - Transfer-Encoding on an HTTP/1.0 response (net/http ignores it and
//     frames by Content-Length or the connection's close);
//   - a Trailer field naming something that is not a token;
//   - a head over maxResponseHeadBytes (net/http's ReadResponse has no
//     bound; http.Transport's is 10 MB), a trailer section over
//     maxTrailerBytes or with a line ending in a bare LF, and more than
//     maxInterimResponses 1xx responses before the final one, as
//     http.Transport refuses.
//
// Like net/http it takes a bare LF as the end of a head's line, Transfer-
// Encoding "chunked" only (one field, one coding), equal Content-Length
// fields as one and differing ones not at all, Transfer-Encoding over
// Content-Length (the latter dropped), and no body for HEAD, 1xx, 204 and
// 304.

const (
	// maxResponseHeadBytes bounds one response head, as Go's server
	// bounds a request's (http.DefaultMaxHeaderBytes).
	maxResponseHeadBytes = http.DefaultMaxHeaderBytes
	// maxTrailerBytes bounds a chunked body's trailer section; net/http
	// refuses one that does not fit its read buffer (keygate's: 16 KB).
	maxTrailerBytes = 8 << 10
	// maxInterimResponses is how many 1xx responses may come before the
	// final one, as in http.Transport.
	maxInterimResponses = 5
	// maxKeptHeadBuffer is the largest head buffer a connection keeps
	// for its next response.
	maxKeptHeadBuffer = 16 << 10
)

// responseError is an upstream answer keygate does not read as HTTP.
type responseError string

func (e responseError) Error() string { return "malformed upstream response: " + string(e) }

var (
	errHeadTooLarge     = responseError("head too large")
	errTrailerTooLarge  = responseError("trailer section too large")
	errStatusLine       = responseError("bad status line")
	errFieldLine        = responseError("bad header field line")
	errObsFold          = responseError("folded header field line")
	errTransferEncoding = responseError("unsupported Transfer-Encoding")
	errContentLength    = responseError("bad or conflicting Content-Length")
	errTrailerNames     = responseError("bad Trailer field")
	errTooManyInterim   = responseError("too many 1xx responses")
	errTrailerLine      = responseError("trailer line not ending in CRLF")
)

// headerField is one field of a head or trailer section: its name in
// canonical form (as http.CanonicalHeaderKey spells it), its value
// without the whitespace around it.
type headerField struct {
	name, value string
	// dropped: a duplicate Content-Length, or one that Transfer-Encoding
	// overrides; never passed on.
	dropped bool
}

// fieldSpan locates a field line in the buffer it was read into.
type fieldSpan struct{ name, nameEnd, value, valueEnd int }

// upstreamResponse is a response whose body is still on the connection.
// It lives on its connection (one request at a time uses one), so reading
// a response allocates only the head's string and the client's header
// values.
type upstreamResponse struct {
	status int
	// contentLength is the body's length; -1 when unknown (chunked, or
	// until the connection closes). For HEAD, what the upstream said.
	contentLength int64
	chunked       bool
	// close: the connection carries nothing after this response.
	close bool
	// connection holds the values of the Connection fields: the names
	// they list are hop-by-hop for this response, its trailers included.
	connection []string
	fields     []headerField
	// trailer lists the fields the upstream announced in Trailer (chunked
	// bodies only); trailers are those that came after the body.
	trailer  []string
	trailers []headerField
	body     responseBody

	buf   []byte
	spans []fieldSpan

	conn   *upstreamConn
	client *upstreamClient
	// stopAbort ends the watch on the client's request that aborts the
	// connection when the client leaves; false: it had fired.
	stopAbort func() bool
}

// eventStream reports whether the body is server-sent events, which may
// stay quiet between events for as long as the upstream likes.
func (r *upstreamResponse) eventStream() bool {
	const es = "text/event-stream"
	for _, f := range r.fields {
		if !f.dropped && keygate.EqualFoldASCII(f.name, "Content-Type") {
			return len(f.value) >= len(es) && keygate.EqualFoldASCII(f.value[:len(es)], es)
		}
	}
	return false
}

// finish returns the connection to the pool when the body was read to the
// end and the upstream keeps the connection open; otherwise closes it.
// Bytes the upstream sent past the end of its response answer no request:
// a connection holding them is closed, never pooled, or they would be read
// as the answer to the next request sent on it, another client's. Nothing
// of r may be read after finish: the connection's next request reuses it.
func (r *upstreamResponse) finish(bodyDone bool) {
	// No field of this response stays reachable from the pool.
	clear(r.fields)
	clear(r.connection)
	clear(r.trailer)
	clear(r.trailers)
	if r.stopAbort != nil {
		if !r.stopAbort() {
			// The client left: the connection's deadline is in the past.
			bodyDone = false
		}
		r.stopAbort = nil
	}
	if bodyDone && !r.close && r.conn.br.Buffered() == 0 {
		r.client.release(r.conn)
		return
	}
	r.conn.Close()
}

// read reads the answer to a request with method from br: 1xx responses
// are skipped; a 101 (upgrades never take this path) and codes outside
// 100-599 (none of HTTP's, RFC 9110 section 15; net/http's server panics
// on one below 100) are refused.
func (r *upstreamResponse) read(br *bufio.Reader, method string) error {
	for interim := 0; ; interim++ {
		if err := r.readHead(br, method); err != nil {
			return err
		}
		switch {
		case r.status < 100 || r.status == http.StatusSwitchingProtocols || r.status > 599:
			return fmt.Errorf("upstream answered status %d", r.status)
		case r.status < 200:
			if interim == maxInterimResponses {
				return errTooManyInterim
			}
			continue
		}
		r.body = responseBody{r: r, br: br, remaining: r.contentLength}
		switch {
		case method == http.MethodHead || !bodyAllowedForStatus(r.status) || r.contentLength == 0:
			r.body.mode = bodyNone
		case r.chunked:
			r.body.mode = bodyChunked
			r.body.chunks = httputil.NewChunkedReader(br)
		case r.contentLength > 0:
			r.body.mode = bodyLength
		default:
			r.body.mode = bodyUntilClose
		}
		return nil
	}
}

func bodyAllowedForStatus(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// readHead reads one response head and works out its framing.
func (r *upstreamResponse) readHead(br *bufio.Reader, method string) error {
	*r = upstreamResponse{fields: r.fields[:0], connection: r.connection[:0], trailer: r.trailer[:0], trailers: r.trailers[:0], buf: r.buf[:0], spans: r.spans[:0], conn: r.conn, client: r.client}
	statusEnd, err := r.readSection(br, true, maxResponseHeadBytes)
	if err != nil {
		return err
	}
	http10, err := r.parseStatusLine(r.buf[:statusEnd])
	if err != nil {
		return err
	}
	head := string(r.buf)
	for _, s := range r.spans {
		r.fields = append(r.fields, headerField{name: head[s.name:s.nameEnd], value: head[s.value:s.valueEnd]})
	}
	if cap(r.buf) > maxKeptHeadBuffer {
		r.buf = nil
	}
	return r.frame(method, http10)
}

// readSection reads lines up to and including an empty one into r.buf
// and the spans of its field lines into r.spans. With status, the first
// line is a status line, whose end it returns. A trailer section
// (!status) must end its lines with CRLF, as net/http's check for its end
// requires.
func (r *upstreamResponse) readSection(br *bufio.Reader, status bool, limit int) (statusEnd int, err error) {
	r.spans = r.spans[:0]
	sectionStart := len(r.buf)
	for first := true; ; first = false {
		start := len(r.buf)
		for {
			frag, err := br.ReadSlice('\n')
			if len(r.buf)+len(frag)-sectionStart > limit {
				if status {
					return 0, errHeadTooLarge
				}
				return 0, errTrailerTooLarge
			}
			r.buf = append(r.buf, frag...)
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
		}
		end := len(r.buf) - 1 // the LF
		if end > start && r.buf[end-1] == '\r' {
			end--
		} else if !status {
			return 0, errTrailerLine
		}
		line := r.buf[start:end]
		if status && first {
			statusEnd = end
			continue
		}
		if len(line) == 0 {
			return statusEnd, nil
		}
		s, err := parseFieldLine(line)
		if err != nil {
			return 0, err
		}
		s.name += start
		s.nameEnd += start
		s.value += start
		s.valueEnd += start
		r.spans = append(r.spans, s)
	}
}

// parseFieldLine checks one "name: value" line and canonicalises its name
// in place; offsets are within line.
func parseFieldLine(line []byte) (fieldSpan, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return fieldSpan{}, errObsFold
	}
	colon := -1
	for i, c := range line {
		if c == ':' {
			colon = i
			break
		}
		if !validHeaderFieldByte(c) {
			return fieldSpan{}, errFieldLine
		}
	}
	if colon <= 0 {
		return fieldSpan{}, errFieldLine
	}
	for _, c := range line[colon+1:] {
		if !validHeaderValueByte(c) {
			return fieldSpan{}, errFieldLine
		}
	}
	canonicalizeName(line[:colon])
	v, end := colon+1, len(line)
	for v < end && (line[v] == ' ' || line[v] == '\t') {
		v++
	}
	for end > v && (line[end-1] == ' ' || line[end-1] == '\t') {
		end--
	}
	return fieldSpan{name: 0, nameEnd: colon, value: v, valueEnd: end}, nil
}

// parseStatusLine reads "HTTP/1.x NNN[ reason]".
func (r *upstreamResponse) parseStatusLine(line []byte) (http10 bool, err error) {
	const prefix = "HTTP/1."
	if len(line) < len("HTTP/1.1 200") || string(line[:len(prefix)]) != prefix || line[8] != ' ' {
		return false, errStatusLine
	}
	switch line[7] {
	case '0':
		http10 = true
	case '1':
	default:
		return false, errStatusLine
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return false, errStatusLine
		}
	}
	if len(line) > 12 && line[12] != ' ' {
		return false, errStatusLine
	}
	for _, c := range line[12:] {
		if !validHeaderValueByte(c) {
			return false, errStatusLine
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	return http10, nil
}

// frame works out the body's framing and the connection's fate from the
// head's fields, as net/http's readTransfer does.
func (r *upstreamResponse) frame(method string, http10 bool) error {
	var te, cl string
	teFields, clFields := 0, 0
	hasClose, keepAlive := false, false
	pragmaNoCache, cacheControl := false, false
	pragmas := 0
	for i := range r.fields {
		f := &r.fields[i]
		switch f.name {
		case "Transfer-Encoding":
			te = f.value
			teFields++
		case "Content-Length":
			if clFields > 0 {
				if f.value != cl {
					return errContentLength
				}
				f.dropped = true
			}
			cl = f.value
			clFields++
		case "Connection":
			r.connection = append(r.connection, f.value)
			hasClose = hasClose || valueHasToken(f.value, "close")
			keepAlive = keepAlive || valueHasToken(f.value, "keep-alive")
		case "Pragma":
			pragmaNoCache = pragmaNoCache || pragmas == 0 && f.value == "no-cache"
			pragmas++
		case "Cache-Control":
			cacheControl = true
		}
	}
	if teFields > 0 {
		if http10 || teFields > 1 || !keygate.EqualFoldASCII(te, "chunked") {
			return errTransferEncoding
		}
		r.chunked = true
	}
	length := int64(-1)
	if clFields > 0 {
		n, ok := parseContentLength(cl)
		if !ok {
			return errContentLength
		}
		length = n
	}
	r.close = hasClose
	if http10 {
		r.close = hasClose || !keepAlive
	}
	switch {
	case method == http.MethodHead:
		r.contentLength = length
	case !bodyAllowedForStatus(r.status):
		r.contentLength = 0
	case r.chunked:
		r.contentLength = -1
		for i := range r.fields {
			if r.fields[i].name == "Content-Length" {
				r.fields[i].dropped = true
			}
		}
	default:
		r.contentLength = length
		if length == -1 {
			// The body runs until the connection closes.
			r.close = true
		}
	}
	if r.chunked {
		if err := r.announcedTrailers(); err != nil {
			return err
		}
	}
	if pragmaNoCache && !cacheControl {
		// HTTP/1.0's Pragma: no-cache read as Cache-Control, as
		// http.ReadResponse does.
		r.fields = append(r.fields, headerField{name: "Cache-Control", value: "no-cache"})
	}
	return nil
}

// announcedTrailers reads the Trailer fields of a chunked response.
func (r *upstreamResponse) announcedTrailers() error {
	for _, f := range r.fields {
		if f.name != "Trailer" {
			continue
		}
		for name := range strings.SplitSeq(f.value, ",") {
			name = strings.Trim(name, " \t")
			if name == "" {
				continue
			}
			for i := 0; i < len(name); i++ {
				if !validHeaderFieldByte(name[i]) {
					return errTrailerNames
				}
			}
			name = http.CanonicalHeaderKey(name)
			switch name {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return errTrailerNames
			}
			if !slices.Contains(r.trailer, name) {
				r.trailer = append(r.trailer, name)
			}
		}
	}
	return nil
}

// readTrailers reads the trailer section after a chunked body's last
// chunk.
func (r *upstreamResponse) readTrailers(br *bufio.Reader) error {
	r.buf = r.buf[:0]
	if _, err := r.readSection(br, false, maxTrailerBytes); err != nil {
		return err
	}
	if len(r.spans) == 0 {
		return nil
	}
	section := string(r.buf)
	for _, s := range r.spans {
		r.trailers = append(r.trailers, headerField{name: section[s.name:s.nameEnd], value: section[s.value:s.valueEnd]})
	}
	return nil
}

// passHeader adds the response's end-to-end fields to h, the client's
// header: not the hop-by-hop ones (RFC 9110 section 7.6.1), nor those
// Connection names, nor TE (a request field: "TE: trailers" passes only
// that way), nor those keygate already set in h, which set lists (see
// keygateSet).
func (r *upstreamResponse) passHeader(h http.Header, set []string) (contentType string) {
	values := make([]string, len(r.fields))
	for i, f := range r.fields {
		if f.dropped || isHopByHopFor(r.connection, f.name) || yieldsToKeygate(set, f.name) {
			continue
		}
		if f.name == "Content-Type" && contentType == "" {
			contentType = f.value
		}
		if prev, ok := h[f.name]; ok {
			h[f.name] = append(prev, f.value)
			continue
		}
		values[i] = f.value
		h[f.name] = values[i : i+1 : i+1]
	}
	return contentType
}

// passedTrailer is r.trailer without the names trailerPasses leaves out
// (set is from keygateSet), in place: the fields the client's Trailer
// announces.
func (r *upstreamResponse) passedTrailer(set []string) []string {
	n := 0
	for _, name := range r.trailer {
		if trailerPasses(set, r.connection, name) {
			r.trailer[n] = name
			n++
		}
	}
	clear(r.trailer[n:])
	r.trailer = r.trailer[:n]
	return r.trailer
}

// The body's framing.
const (
	bodyNone = iota
	bodyLength
	bodyChunked
	bodyUntilClose
)

// responseBody reads an upstream response's body off its connection, as
// its head framed it: never past its end.
type responseBody struct {
	r         *upstreamResponse
	br        *bufio.Reader
	mode      int
	remaining int64 // bodyLength: bytes still to come
	chunks    io.Reader
	err       error
	// idle, when set, is the longest wait for the next bytes; the read
	// deadline is pushed on once a quarter of it has passed, so a fast
	// body costs no deadline per read.
	idle     time.Duration
	extendAt time.Time
}

func (b *responseBody) Read(p []byte) (n int, err error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.idle > 0 && b.br.Buffered() == 0 {
		if now := time.Now(); now.After(b.extendAt) {
			b.r.conn.SetReadDeadline(now.Add(b.idle))
			b.extendAt = now.Add(b.idle / 4)
		}
	}
	switch b.mode {
	case bodyNone:
		err = io.EOF
	case bodyLength:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = b.br.Read(p)
		b.remaining -= int64(n)
		switch {
		case b.remaining == 0:
			err = io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		n, err = b.chunks.Read(p)
		if err == io.EOF {
			if terr := b.r.readTrailers(b.br); terr != nil {
				err = terr
			}
		}
	default:
		n, err = b.br.Read(p)
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// parseContentLength reads a Content-Length value as net/http does: a
// decimal number below 2^63, nothing else.
func parseContentLength(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// valueHasToken reports whether the comma-separated value v holds token,
// ASCII case folded, as net/http reads Connection.
func valueHasToken(v, token string) bool {
	return httpguts.HeaderValuesContainsToken([]string{v}, token)
}

// canonicalizeName spells a valid field name as http.CanonicalHeaderKey
// does: upper case first and after each '-', lower case elsewhere.
func canonicalizeName(name []byte) {
	upper := true
	for i, c := range name {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		name[i] = c
		upper = c == '-'
	}
}

// validHeaderFieldByte reports whether c may appear in a field name: a
// token character (RFC 9110 section 5.6.2).
func validHeaderFieldByte(c byte) bool {
	switch {
	case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValueByte reports whether c may appear in a field value: no
// control character but HTAB (RFC 9110 section 5.5); obs-text passes, as
// in net/http.
func validHeaderValueByte(c byte) bool {
	return c == '\t' || c >= 0x20 && c != 0x7f
}
