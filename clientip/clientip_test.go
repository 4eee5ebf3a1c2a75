package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/clientip"
)

func TestClientIP(t *testing.T) {
	r, err := clientip.New([]string{"10.0.0.0/8", "192.0.2.10", "fd00::/8", " 2001:db8::10 "})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client", "203.0.113.7:5555", nil, "203.0.113.7"},
		{"spoofed header from an untrusted peer changes nothing", "203.0.113.7:5555", []string{"198.51.100.1"}, "203.0.113.7"},
		{"spoofed trusted address from an untrusted peer", "203.0.113.7:5555", []string{"10.0.0.1"}, "203.0.113.7"},
		{"trusted proxy, no header: the proxy", "10.1.2.3:4444", nil, "10.1.2.3"},
		{"trusted proxy forwards the client", "10.1.2.3:4444", []string{"203.0.113.7"}, "203.0.113.7"},
		{"forged entries left of the real client are ignored", "10.1.2.3:4444", []string{"1.1.1.1, 8.8.8.8, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops are skipped right to left", "10.1.2.3:4444", []string{"1.1.1.1, 203.0.113.7, 10.9.9.9, 192.0.2.10"}, "203.0.113.7"},
		{"single trusted address, not its neighbours", "192.0.2.11:80", []string{"203.0.113.7"}, "192.0.2.11"},
		{"several headers read as one list", "10.1.2.3:4444", []string{"1.1.1.1, 203.0.113.7", "10.0.0.5", "10.0.0.6"}, "203.0.113.7"},
		{"client in an earlier header", "10.1.2.3:4444", []string{"203.0.113.7", "10.0.0.5, 10.0.0.6"}, "203.0.113.7"},
		{"every hop trusted: the farthest", "10.1.2.3:4444", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"garbage stops at the last good hop", "10.1.2.3:4444", []string{"203.0.113.7, not-an-ip"}, "10.1.2.3"},
		{"garbage after a trusted hop", "10.1.2.3:4444", []string{"203.0.113.7, unknown, 10.0.0.9"}, "10.0.0.9"},
		{"garbage left of the client is never reached", "10.1.2.3:4444", []string{"<script>, 203.0.113.7"}, "203.0.113.7"},
		{"empty entry is malformed", "10.1.2.3:4444", []string{"203.0.113.7,,10.0.0.9"}, "10.0.0.9"},
		{"empty header", "10.1.2.3:4444", []string{""}, "10.1.2.3"},
		{"out-of-range octets", "10.1.2.3:4444", []string{"256.1.1.1"}, "10.1.2.3"},
		{"entry with a port", "10.1.2.3:4444", []string{"203.0.113.7:61000"}, "203.0.113.7"},
		{"IPv6 client through an IPv4 proxy", "10.1.2.3:4444", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 client in brackets with a port", "10.1.2.3:4444", []string{"[2001:db8::7]:61000"}, "2001:db8::7"},
		{"IPv6 client in brackets", "10.1.2.3:4444", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"IPv6 direct client", "[2001:db8::7]:5555", []string{"198.51.100.1"}, "2001:db8::7"},
		{"IPv6 trusted proxy", "[fd00::1]:4444", []string{"198.51.100.1, 2001:db8::10"}, "198.51.100.1"},
		{"IPv6 zone is dropped", "[fe80::1%eth0]:5555", nil, "fe80::1"},
		{"IPv4-mapped peer matches an IPv4 range", "[::ffff:10.1.2.3]:4444", []string{"203.0.113.7"}, "203.0.113.7"},
		{"IPv4-mapped client is its IPv4 address", "10.1.2.3:4444", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"remote address without a port", "203.0.113.7", nil, "203.0.113.7"},
		{"not an IP: a Unix socket", "@", []string{"203.0.113.7"}, "invalid IP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/p/abc123def456", nil)
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := r.ClientIP(req).String(); got != tt.want {
				t.Errorf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNoTrustedProxies(t *testing.T) {
	r, err := clientip.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	if got := r.ClientIP(req); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("ClientIP = %s, want the peer 127.0.0.1", got)
	}
}

func TestNewRejectsInvalidEntries(t *testing.T) {
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0", "proxy.internal", "10.0.0.1/8/8", "2001:db8::/129", "10.0.0.1:80"} {
		_, err := clientip.New([]string{"10.0.0.0/8", bad})
		if keygate.ErrorCode(err) != keygate.EINVALID {
			t.Errorf("New(%q) error = %v, want EINVALID", bad, err)
		}
	}
}

func TestTrusted(t *testing.T) {
	r, err := clientip.New([]string{"10.1.2.3/8", "::ffff:192.168.0.0/112"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.200.0.1": true, "11.0.0.1": false,
		"192.168.7.7": true, "::ffff:192.168.7.7": true, "192.169.0.1": false,
	} {
		if got := r.Trusted(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Trusted(%s) = %v, want %v", addr, got, want)
		}
	}
}

func BenchmarkClientIP(b *testing.B) {
	r, _ := clientip.New([]string{"10.0.0.0/8", "172.16.0.0/12"})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "10.1.2.3:4444"
	req.Header.Set("X-Forwarded-For", "203.0.113.7, 172.16.0.9, 10.0.0.2")
	for b.Loop() {
		r.ClientIP(req)
	}
}

func TestBucketCountsIPv6ByPrefix(t *testing.T) {
	r, _ := clientip.New(nil)
	for addr, want := range map[string]string{
		"198.51.100.7":         "198.51.100.7",
		"::ffff:198.51.100.7":  "198.51.100.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::1%eth0": "2001:db8:1:2::/64",
		"2001:db8:1:3:ffff::":  "2001:db8:1:3::/64",
		"::1":                  "::/64",
		"fe80::1:2:3:4":        "fe80::/64",
		// NAT64 and 6to4: the IPv4 client inside, not one bucket for all
		// translated clients nor 65,536 for one 6to4 host.
		"64:ff9b::198.51.100.7":  "198.51.100.7",
		"64:ff9b::203.0.113.9":   "203.0.113.9",
		"2002:c633:6407:1::1":    "198.51.100.7",
		"2002:c633:6407:ffff::2": "198.51.100.7",
	} {
		if got := r.Bucket(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Bucket(%s) = %s, want %s", addr, got, want)
		}
	}
	r56, err := r.WithIPv6PrefixLength(56)
	if err != nil {
		t.Fatal(err)
	}
	if got := r56.Bucket(netip.MustParseAddr("2001:db8:1:2ff:1::1")); got != "2001:db8:1:200::/56" {
		t.Errorf("/56 bucket %s", got)
	}
	r128, _ := r.WithIPv6PrefixLength(128)
	if got := r128.Bucket(netip.MustParseAddr("2001:db8::7")); got != "2001:db8::7" {
		t.Errorf("/128 bucket %s", got)
	}
	if _, err := r.WithIPv6PrefixLength(0); keygate.ErrorCode(err) != keygate.EINVALID {
		t.Errorf("prefix length 0: %v", err)
	}
}
