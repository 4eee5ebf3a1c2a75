package clientip_test

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/keygate/keygate/clientip"
)

// FuzzClientIP checks the resolver against its rule on arbitrary peers and
// X-Forwarded-For headers: an untrusted peer is the client whatever the
// headers say; behind trusted proxies the client is the rightmost entry
// that is not one of them, reading stops at the first malformed entry, and
// the answer is always an address the request actually carried, unmapped
// and without a zone.
func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.7:5555", "10.0.0.1", "")
	f.Add("10.1.2.3:4444", "1.1.1.1, 203.0.113.7, 10.9.9.9, 192.0.2.10", "")
	f.Add("10.1.2.3:4444", "203.0.113.7", "10.0.0.5, 10.0.0.6")
	f.Add("10.1.2.3:4444", "203.0.113.7, not-an-ip", "")
	f.Add("10.1.2.3:4444", "203.0.113.7,,10.0.0.9", "")
	f.Add("[::ffff:10.1.2.3]:4444", "[2001:db8::1]:80", "")
	f.Add("[fd00::1%eth0]:1", "::ffff:203.0.113.7", "fe80::1%25eth0")
	f.Add("10.1.2.3:4444", "", ",")
	f.Add("192.0.2.10", " 198.51.100.1:8080 ", "")
	f.Add("@unix", "203.0.113.7", "")
	r, err := clientip.New([]string{"10.0.0.0/8", "192.0.2.10", "fd00::/8"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = remote
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				req.Header.Add("X-Forwarded-For", v)
			}
		}
		got := r.ClientIP(req)
		if got.IsValid() && (got.Is4In6() || got.Zone() != "") {
			t.Fatalf("ClientIP = %v: not normalised", got)
		}
		peer := referencePeer(remote)
		if !peer.IsValid() || !r.Trusted(peer) {
			if got != peer {
				t.Fatalf("untrusted peer %q: ClientIP = %v, want the peer %v", remote, got, peer)
			}
			return
		}
		if want := referenceClient(r, peer, req.Header.Values("X-Forwarded-For")); got != want {
			t.Fatalf("peer %q, X-Forwarded-For %q: ClientIP = %v, want %v", remote, req.Header.Values("X-Forwarded-For"), got, want)
		}
	})
}

// referenceClient walks the entries right to left across every header
// value, skipping trusted hops; empty header values carry no entries.
func referenceClient(r *clientip.Resolver, peer netip.Addr, values []string) netip.Addr {
	var entries []string
	for _, v := range values {
		if v != "" {
			entries = append(entries, strings.Split(v, ",")...)
		}
	}
	hop := peer
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := referenceAddr(strings.TrimSpace(entries[i]))
		if !ok {
			return hop
		}
		hop = a
		if !r.Trusted(a) {
			return a
		}
	}
	return hop
}

// referenceAddr reads an address as proxies write it: bare, with a port,
// or IPv6 in brackets with or without one; surrounding spaces ignored.
func referenceAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func referencePeer(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	a, _ := referenceAddr(remote)
	return a
}
