package gateway

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"io"
	"net/http"
	"time"

	"github.com/keygate/keygate"
)

// SetUpstreamTLSHandshakeTimeout lets tests wait for a stalled handshake
// for less than the production timeout; it returns the previous value.
func SetUpstreamTLSHandshakeTimeout(d time.Duration) time.Duration {
	old := upstreamTLSHandshakeTimeout
	upstreamTLSHandshakeTimeout = d
	return old
}

// SetUpstreamTimeouts shortens g's waits on its upstream, so tests of the
// timeouts take milliseconds.
func SetUpstreamTimeouts(g *Gateway, responseHeader, tlsHandshake time.Duration) {
	g.forward.client.timeouts.responseHeader = responseHeader
	g.forward.client.timeouts.tlsHandshake = tlsHandshake
}

// TrustUpstreamCertificates makes g's upstream client trust roots, for
// test servers with their own certificates.
func TrustUpstreamCertificates(g *Gateway, roots *x509.CertPool) {
	g.forward.client.tls.RootCAs = roots
}

// WrittenMarks reports how many tokens Usage remembers a written minute of.
func WrittenMarks(u *Usage) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.written)
}

// LimitKeys returns the bucket d counts in under rule as the gateway
// names it for a request (a token's own keys made once with its
// identity), and as it is spelled out without them.
func LimitKeys(g *Gateway, d Decision, rule *keygate.RateLimit, req Request) (used, spelled string) {
	used = g.limitKey(rule, &d, req)
	d.signed = nil
	return used, g.limitKey(rule, &d, req)
}

// ReadUpstreamResponse reads raw as keygate's client reads an upstream's
// answer to a GET: the head's error, else the body's.
func ReadUpstreamResponse(raw []byte) (headErr, bodyErr error) {
	var r upstreamResponse
	if err := r.read(bufio.NewReaderSize(bytes.NewReader(raw), 16<<10), http.MethodGet); err != nil {
		return err, nil
	}
	_, err := io.Copy(io.Discard, &r.body)
	return nil, err
}

// SetUpstreamDialTimeout shortens g's wait for a connection to its
// upstream, name resolution included.
func SetUpstreamDialTimeout(g *Gateway, d time.Duration) {
	g.forward.client.timeouts.dial = d
}

// OrgSlots returns how many organizations' slots the cache holds.
func OrgSlots(t *Tokens) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.orgs)
}

// LoggedPath is the path as keygate's log lines show it.
func LoggedPath(p string) string { return loggedPath(p) }
