package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/egress"
)

// errPrivateAddress refuses a connection to an address that is not public:
// an organization's owner chooses the URL, and must not be able to make
// keygate POST into its own network (SSRF).
var errPrivateAddress = errors.New("the endpoint's host is a private, loopback or otherwise non-public address")

// newClient returns the client deliveries go out with. The address check
// runs on the address actually dialled, after DNS resolution, so a name
// that resolves (or later re-resolves) to a private address is refused too.
func newClient(allowPrivate bool, timeout time.Duration) *http.Client {
	dialer := egress.Dialer(timeout, 30*time.Second, allowPrivate, errPrivateAddress)
	return &http.Client{
		Transport: &http.Transport{
			// No proxy from the environment: a proxy would dial for us and
			// the address check would only see the proxy.
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			MaxResponseHeaderBytes: egress.MaxResponseHeaderBytes,
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        90 * time.Second,
			ForceAttemptHTTP2:      true,
		},
		// Standard Webhooks: a redirect is a failure; the owner should fix
		// the URL. Following it would also dodge the address check's intent.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// CheckURL tells an owner adding an endpoint, before any event, whether
// deliveries could reach it: the URL is well formed and, unless private
// addresses are allowed, every address its host resolves to is public.
// Deliveries check again on every connection, so passing here is advice,
// not a promise.
func (d *Dispatcher) CheckURL(ctx context.Context, raw string) error {
	clean, err := keygate.CleanWebhookURL(raw)
	if err != nil || d.allowPrivate {
		return err
	}
	u, _ := url.Parse(clean)
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !egress.PublicAddr(ip) {
			return keygate.Errorf(keygate.EINVALID, "Webhook URL must not point to a private or local address.")
		}
		return nil
	}
	addrs, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return keygate.Errorf(keygate.EINVALID, "Webhook URL host %q could not be resolved.", host)
	}
	for _, ip := range addrs {
		if !egress.PublicAddr(ip) {
			return keygate.Errorf(keygate.EINVALID, "Webhook URL host %q resolves to a private or local address.", host)
		}
	}
	return nil
}
