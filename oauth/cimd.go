package oauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/egress"
)

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
// a client whose client_id is an HTTPS URL publishes its metadata there,
// and keygate fetches it instead of asking the client to register. The
// fetch is a request keygate makes to an address an anonymous caller
// chose, so it is fenced in: https only, no redirects, a 5 KB body, a
// 5 second budget, and no loopback, private, link-local or otherwise
// non-public address unless the config allows it (the check runs on the
// address actually dialled, so DNS tricks cannot slip past it).
const (
	metadataMaxBytes   = 5 << 10
	metadataTimeout    = 5 * time.Second
	metadataDefaultTTL = 10 * time.Minute
	metadataMaxTTL     = 24 * time.Hour
	metadataErrorTTL   = 30 * time.Second
	metadataCacheSize  = 1000
)

// isMetadataClientID reports whether a client_id names a metadata document.
func isMetadataClientID(id string) bool { return strings.HasPrefix(id, "https://") }

// metadataFetcher fetches and caches metadata documents.
type metadataFetcher struct {
	http *http.Client
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cachedClient
}

type cachedClient struct {
	client  *keygate.OAuthClient
	err     error
	expires time.Time
}

var errPrivateAddress = errors.New("address not allowed")

func newMetadataFetcher(allowPrivate bool, roots *x509.CertPool, now func() time.Time) *metadataFetcher {
	dialer := egress.Dialer(metadataTimeout, 30*time.Second, allowPrivate, errPrivateAddress)
	transport := &http.Transport{
		// No proxy from the environment: a proxy would dial for us and
		// the address check above would see only the proxy.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		MaxResponseHeaderBytes: egress.MaxResponseHeaderBytes,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    metadataTimeout,
		ResponseHeaderTimeout:  metadataTimeout,
		MaxIdleConns:           10,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &metadataFetcher{
		http: &http.Client{
			Transport: transport,
			Timeout:   metadataTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		now:   now,
		cache: map[string]cachedClient{},
	}
}

// checkMetadataURL applies the document URL rules: https, a host, a path
// that is not just "/", no dot segments, no fragment, no user information.
func checkMetadataURL(id string) error {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return keygate.Errorf(keygate.EINVALID, "The client_id URL is not a valid https URL.")
	}
	if u.Path == "" || u.Path == "/" {
		return keygate.Errorf(keygate.EINVALID, "A client_id URL must have a path.")
	}
	if u.Fragment != "" || strings.Contains(id, "#") || u.User != nil {
		return keygate.Errorf(keygate.EINVALID, "A client_id URL must not have a fragment or user information.")
	}
	if !asciiHost(u) {
		return keygate.Errorf(keygate.EINVALID, "A client_id URL must name its host in ASCII (an internationalized name in its xn-- form).")
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return keygate.Errorf(keygate.EINVALID, "A client_id URL must not have . or .. path segments.")
		}
	}
	if len(id) > maxRedirectURILen {
		return keygate.Errorf(keygate.EINVALID, "The client_id URL is too long.")
	}
	return nil
}

// client returns the client a metadata document describes, from the cache
// when it is fresh.
func (f *metadataFetcher) client(ctx context.Context, id string) (*keygate.OAuthClient, error) {
	if err := checkMetadataURL(id); err != nil {
		return nil, err
	}
	now := f.now()
	f.mu.Lock()
	cached, ok := f.cache[id]
	f.mu.Unlock()
	if ok && now.Before(cached.expires) {
		return cached.client, cached.err
	}
	c, ttl, err := f.fetch(ctx, id)
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about the document.
		return nil, err
	}
	if err != nil {
		ttl = metadataErrorTTL
	}
	if ttl > 0 {
		f.store(id, cachedClient{client: c, err: err, expires: now.Add(ttl)}, now)
	}
	return c, err
}

func (f *metadataFetcher) store(id string, entry cachedClient, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cache) >= metadataCacheSize {
		for k, v := range f.cache {
			if !now.Before(v.expires) {
				delete(f.cache, k)
			}
		}
		for k := range f.cache {
			if len(f.cache) < metadataCacheSize {
				break
			}
			delete(f.cache, k)
		}
	}
	f.cache[id] = entry
}

// fetch downloads and validates the document at id and says how long it
// may be cached.
func (f *metadataFetcher) fetch(ctx context.Context, id string) (*keygate.OAuthClient, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, fetchError("it is not a valid URL")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keygate")
	resp, err := f.http.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, errPrivateAddress):
			return nil, 0, fetchError("its address is not a public one")
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return nil, 0, fetchError("the request timed out")
		}
		return nil, 0, fetchError("the request failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fetchError("it answered HTTP " + strconv.Itoa(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, metadataMaxBytes+1))
	if err != nil {
		return nil, 0, fetchError("reading it failed")
	}
	if len(body) > metadataMaxBytes {
		return nil, 0, fetchError("it is larger than 5 KB")
	}
	var m clientMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, 0, invalidDocument("it is not a JSON object of client metadata")
	}
	c, err := clientFromDocument(id, &m)
	if err != nil {
		return nil, 0, err
	}
	return c, cacheTTL(resp.Header.Get("Cache-Control")), nil
}

// clientFromDocument validates a fetched document against its URL.
func clientFromDocument(id string, m *clientMetadata) (*keygate.OAuthClient, error) {
	if m.ClientID != id {
		return nil, invalidDocument("its client_id is not its own URL")
	}
	if len(m.ClientSecret) > 0 {
		return nil, invalidDocument("it contains a client_secret")
	}
	if m.TokenEndpointAuthMethod != "" && m.TokenEndpointAuthMethod != keygate.OAuthAuthNone {
		return nil, invalidDocument("keygate accepts only public clients (token_endpoint_auth_method none) from metadata documents")
	}
	c, aerr := m.check()
	if aerr != nil {
		return nil, invalidDocument(strings.TrimSuffix(aerr.description, "."))
	}
	c.ID = id
	c.TokenEndpointAuthMethod = keygate.OAuthAuthNone
	c.Source = keygate.OAuthClientMetadata
	return c, nil
}

// cacheTTL reads how long a document may be kept from Cache-Control:
// no-store and no-cache mean not at all, max-age is honoured up to a day,
// and a document without either is kept ten minutes.
func cacheTTL(cacheControl string) time.Duration {
	ttl := metadataDefaultTTL
	for part := range strings.SplitSeq(cacheControl, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		switch {
		case part == "no-store" || part == "no-cache":
			return 0
		case strings.HasPrefix(part, "max-age="):
			n, err := strconv.Atoi(strings.Trim(strings.TrimPrefix(part, "max-age="), `"`))
			if err != nil || n < 0 {
				return 0
			}
			// Bounded before it becomes a Duration, which a huge number
			// of seconds would overflow.
			ttl = time.Duration(min(n, int(metadataMaxTTL/time.Second))) * time.Second
		}
	}
	return min(ttl, metadataMaxTTL)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func fetchError(why string) error {
	return keygate.Errorf(keygate.EINVALID, "keygate could not fetch the application's metadata document: %s.", why)
}

func invalidDocument(why string) error {
	return keygate.Errorf(keygate.EINVALID, "The application's metadata document is not valid: %s.", why)
}
