package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/keygate/keygate"
)

// errPrivateAddress refuses a connection to an address that is not public:
// an organization's owner chooses the URL, and must not be able to make
// keygate POST into its own network (SSRF).
var errPrivateAddress = errors.New("the endpoint's host is a private, loopback or otherwise non-public address")

// newClient returns the client deliveries go out with. The address check
// runs on the address actually dialled, after DNS resolution, so a name
// that resolves (or later re-resolves) to a private address is refused too.
func newClient(allowPrivate bool, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			if !publicHostPort(address) {
				return errPrivateAddress
			}
			return nil
		}
	}
	return &http.Client{
		Transport: &http.Transport{
			// No proxy from the environment: a proxy would dial for us and
			// the address check would only see the proxy.
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		// Standard Webhooks: a redirect is a failure; the owner should fix
		// the URL. Following it would also dodge the address check's intent.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func publicHostPort(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && publicAddr(ip)
}

// nonPublic lists ranges that are not reachable on the public internet, or
// that wrap addresses which may not be (NAT64, 6to4), beyond what
// netip.Addr's own predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("fec0::/10"),
}

// publicAddr reports whether ip is a public unicast address.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
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
		if !publicAddr(ip) {
			return keygate.Errorf(keygate.EINVALID, "Webhook URL must not point to a private or local address.")
		}
		return nil
	}
	addrs, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return keygate.Errorf(keygate.EINVALID, "Webhook URL host %q could not be resolved.", host)
	}
	for _, ip := range addrs {
		if !publicAddr(ip) {
			return keygate.Errorf(keygate.EINVALID, "Webhook URL host %q resolves to a private or local address.", host)
		}
	}
	return nil
}
