// Package clientip finds the address of the client behind a request, the
// key for per-IP rate limits.
//
// The connection's address is the truth unless it belongs to a trusted
// proxy. Only then is X-Forwarded-For read, right to left, because each
// proxy appends the address it received the request from: the entries on
// the right were written by proxies we trust, everything left of the first
// untrusted address was written by the client and may be forged. A client
// connecting directly can therefore never choose its own address.
package clientip

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/egress"
)

// DefaultIPv6PrefixLength is how much of an IPv6 address names one client
// for per-IP limits: a /64 is what one subscriber's link gets, and a host
// picks any address in it at will (RFC 4941 privacy addresses), so
// counting whole addresses would give one client 2^64 buckets.
const DefaultIPv6PrefixLength = 64

// Resolver resolves client addresses given the trusted proxies.
type Resolver struct {
	trusted    []netip.Prefix
	ipv6Prefix int
}

// New returns a Resolver trusting the given proxies: CIDRs
// ("10.0.0.0/8", "fd00::/8") or single addresses ("192.0.2.10").
// An entry that is neither is an EINVALID error naming it.
func New(trusted []string) (*Resolver, error) {
	r := &Resolver{ipv6Prefix: DefaultIPv6PrefixLength}
	for _, s := range trusted {
		p, err := parsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, keygate.Errorf(keygate.EINVALID, "Trusted proxy %q is not an IP address or CIDR.", s)
		}
		r.trusted = append(r.trusted, p)
	}
	return r, nil
}

// WithIPv6PrefixLength returns a copy of r that buckets IPv6 clients by
// their first bits bits (1 to 128); an out-of-range length is EINVALID.
func (r *Resolver) WithIPv6PrefixLength(bits int) (*Resolver, error) {
	if bits < 1 || bits > 128 {
		return nil, keygate.Errorf(keygate.EINVALID, "IPv6 prefix length %d is not between 1 and 128.", bits)
	}
	c := *r
	c.ipv6Prefix = bits
	return &c, nil
}

// Bucket names the client at addr for per-IP limits: an IPv4 address as
// it is (IPv4-mapped, NAT64 and 6to4 IPv6 included), an IPv6 address by its prefix
// ("2001:db8:1:2::/64"). The zero Addr (a Unix socket peer) is
// "invalid IP", one bucket for all such clients.
func (r *Resolver) Bucket(addr netip.Addr) string { return Bucket(addr, r.ipv6Prefix) }

// Bucket is the per-IP key of addr with IPv6 addresses counted by their
// first ipv6Prefix bits (0: DefaultIPv6PrefixLength): the one rule every
// per-address limit keys by, the gateway's and the login throttles alike.
//
// A NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address is the IPv4 client
// inside it: behind a translator every IPv4 client is in 64:ff9b::/64, one
// bucket that a single client could fill for all, and a 6to4 host owns a
// whole /48 of them, 65,536 buckets of its own.
func Bucket(addr netip.Addr, ipv6Prefix int) string {
	if ipv6Prefix <= 0 {
		ipv6Prefix = DefaultIPv6PrefixLength
	}
	addr = normalize(addr)
	if v4, ok := egress.EmbeddedIPv4(addr); ok {
		addr = v4
	}
	if !addr.Is6() || ipv6Prefix >= 128 {
		return addr.String()
	}
	p, _ := addr.Prefix(ipv6Prefix)
	return p.String()
}

// BucketOf is Bucket of an address in text, as request handlers pass
// it; text that is not an address is its own bucket.
func BucketOf(addr string, ipv6Prefix int) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	return Bucket(a, ipv6Prefix)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = normalize(a)
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted reports whether addr is one of the trusted proxies.
func (r *Resolver) Trusted(addr netip.Addr) bool {
	addr = normalize(addr)
	for _, p := range r.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientIP returns the client's address: req.RemoteAddr unless that peer
// is trusted; then the rightmost X-Forwarded-For entry that is not a
// trusted proxy. When the header runs out, or holds something that is not
// an address, it stops at the last address it could verify: a malformed
// entry must not let the client pick the key it is limited under.
//
// It returns the zero Addr when RemoteAddr is not an IP address (a Unix
// socket listener); callers should then limit all such requests together.
func (r *Resolver) ClientIP(req *http.Request) netip.Addr {
	peer := parsePeer(req.RemoteAddr)
	if !peer.IsValid() || !r.Trusted(peer) {
		return peer
	}
	hop := peer
	values := req.Header.Values("X-Forwarded-For")
	// Proxies append: the last header's last entry is the nearest hop.
	for i := len(values) - 1; i >= 0; i-- {
		// An empty header value has no entries; in any other, an empty
		// entry (",10.0.0.1", "a,,b") is malformed like any other and
		// stops the reading, wherever it stands.
		rest, more := values[i], values[i] != ""
		for more {
			var entry string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				rest, entry = rest[:j], rest[j+1:]
			} else {
				rest, entry, more = "", rest, false
			}
			addr := parseHop(entry)
			if !addr.IsValid() {
				return hop
			}
			hop = addr
			if !r.Trusted(addr) {
				return addr
			}
		}
	}
	return hop
}

// Peer returns the address of the connection req came on (normalised like
// every address here), or the zero Addr when it is not an IP address.
func Peer(req *http.Request) netip.Addr { return parsePeer(req.RemoteAddr) }

// parsePeer reads net/http's RemoteAddr, "ip:port", or a bare address as
// some servers and tests set it.
func parsePeer(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr())
	}
	return parseHop(s)
}

// parseHop reads one address as proxies write them: "192.0.2.1",
// "2001:db8::1", or with a port, "192.0.2.1:8080" and "[2001:db8::1]:8080".
// It returns the zero Addr for anything else.
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr())
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return normalize(a)
		}
	}
	return netip.Addr{}
}

// normalize makes one client one key: an IPv4 client reached over an IPv6
// socket (::ffff:192.0.2.1) is 192.0.2.1, and an IPv6 zone names the
// local interface, not the client.
func normalize(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}
