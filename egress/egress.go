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

// nonPublic lists what the IANA IPv4 and IPv6 special-purpose address
// registries mark as not globally reachable (or deprecated), beyond what
// netip.Addr's own predicates (loopback, private, link-local, multicast,
// unspecified) already refuse. Ranges that embed an IPv4 address in a
// known place (NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that
// address instead, in EmbeddedIPv4.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),   // documentation
	netip.MustParsePrefix("192.88.99.0/24"), // 6to4 relay anycast, deprecated
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"), // reserved, and broadcast
	// ::/8 is reserved: the unspecified and loopback addresses,
	// IPv4-compatible ::a.b.c.d (::/96, deprecated, and routed to the
	// IPv4 address by some stacks) and SIIT's ::ffff:0:a.b.c.d. IPv4-mapped
	// ::ffff:a.b.c.d is unmapped before this list is read.
	netip.MustParsePrefix("::/8"),
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64: any embedding, inside a network
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("2001::/23"),      // IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("3fff::/20"),      // documentation
	netip.MustParsePrefix("5f00::/16"),      // SRv6 segment identifiers
	netip.MustParsePrefix("fec0::/10"),      // site-local, deprecated
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// PublicAddr reports whether ip is a public unicast address: one the
// public internet routes to, whatever wrapping it arrives in.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:a.b.c.d is dialled as a.b.c.d
	if v4, ok := EmbeddedIPv4(ip); ok {
		return publicUnwrapped(v4)
	}
	return publicUnwrapped(ip)
}

func publicUnwrapped(ip netip.Addr) bool {
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

// EmbeddedIPv4 returns the IPv4 address that a NAT64 (RFC 6052 well-known
// prefix) or 6to4 (RFC 3056) address reaches: such an address is as public
// as the IPv4 address inside it. DNS64 networks give every IPv4-only host a
// 64:ff9b:: address, so refusing the whole prefix would refuse the public
// internet there.
func EmbeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case !ip.Is6():
		return netip.Addr{}, false
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// MaxResponseHeaderBytes bounds the response head read from a URL a user
// chose. net/http's default is 10 MiB, which anyone who can name a URL
// (a webhook endpoint, a client_id on the open authorization endpoint)
// could make keygate read and hold on every request; a webhook receiver
// or a metadata server needs a few hundred bytes.
const MaxResponseHeaderBytes = 16 << 10

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
