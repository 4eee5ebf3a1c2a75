// Package egress guards keygate's outbound requests to URLs that users
// choose — OAuth Client ID Metadata Documents and webhook endpoints — so
// they cannot be turned against keygate's own network (server-side request
// forgery). The check runs on the address actually dialled, after DNS
// resolution, so a name that resolves (or re-resolves) to a private address
// is refused too.
package egress

import (
	"net"
	"net/netip"
	"syscall"
	"time"
)

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

// PublicAddr reports whether ip is a public unicast address.
func PublicAddr(ip netip.Addr) bool {
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

// Dialer returns a dialer that refuses every non-public address with
// refusal, unless allowPrivate is set (tests, receivers inside the
// operator's own network). Use it with a transport whose Proxy is nil: a
// proxy would dial for the client and the check would see only the proxy.
func Dialer(timeout, keepAlive time.Duration, allowPrivate bool, refusal error) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: keepAlive}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return refusal
			}
			if ip, err := netip.ParseAddr(host); err != nil || !PublicAddr(ip) {
				return refusal
			}
			return nil
		}
	}
	return d
}
