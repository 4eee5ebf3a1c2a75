package egress

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestPublicAddr(t *testing.T) {
	for addr, public := range map[string]bool{
		"93.184.216.34":        true,
		"2606:2800:220:1::248": true,
		"127.0.0.1":            false,
		"::1":                  false,
		"10.1.2.3":             false,
		"172.16.0.1":           false,
		"192.168.1.1":          false,
		"169.254.169.254":      false, // cloud metadata
		"100.64.0.1":           false,
		"0.0.0.0":              false,
		"::":                   false,
		"fe80::1":              false,
		"fc00::1":              false,
		"::ffff:127.0.0.1":     false,
		"::ffff:10.0.0.1":      false,
		"64:ff9b::a00:1":       false,
		"2002:a00:1::":         false,
		"224.0.0.1":            false,
		"255.255.255.255":      false,
		"192.88.99.1":          false, // 6to4 relay anycast
		// IPv4-compatible (::/96), SIIT and the rest of ::/8.
		"::127.0.0.1":        false,
		"::10.0.0.1":         false,
		"::8.8.8.8":          false,
		"::ffff:0:127.0.0.1": false,
		"::2":                false,
		// IPv4-mapped: judged as the IPv4 address it is dialled as.
		"::ffff:8.8.8.8":                       true,
		"::ffff:169.254.1.1":                   false,
		"100::1":                               false, // discard-only
		"100::ffff:1":                          false,
		"2001::1":                              false, // Teredo
		"2001:0:4136:e378:8000:63bf:3fff:fdd2": false,
		"2001:2::1":                            false, // benchmarking
		"2001:10::1":                           false, // ORCHID
		"2001:db8::1":                          false,
		"3fff::1":                              false,
		"5f00::1":                              false,
		"fec0::1":                              false,
		"ff02::1":                              false,
		// NAT64 and 6to4 are as public as the IPv4 address inside them.
		"64:ff9b::7f00:1":      false,
		"64:ff9b::a9fe:a9fe":   false,
		"64:ff9b::808:808":     true,
		"64:ff9b:1::808:808":   false, // local-use NAT64
		"2002:7f00:1::1":       false,
		"2002:c0a8:101::1":     false,
		"2002:808:808::1":      true,
		"2001:4860:4860::8888": true, // outside 2001::/23
	} {
		if got := PublicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, public)
		}
	}
}

func TestDialerRefusesLoopbackUnlessAllowed(t *testing.T) {
	refusal := errRefused("refused")
	d := Dialer(time.Second, 0, false, refusal)
	if _, err := d.Dial("tcp", "127.0.0.1:9"); err == nil || !errors.Is(err, refusal) {
		t.Fatalf("dial to loopback: %v, want the refusal", err)
	}
	for _, addr := range []string{"[::127.0.0.1]:1", "[::ffff:127.0.0.1]:1", "[64:ff9b::7f00:1]:1", "[2002:7f00:1::1]:1", "[100::1]:1", "[2001::1]:1"} {
		if _, err := d.Dial("tcp", addr); err == nil || !errors.Is(err, refusal) {
			t.Errorf("dial to %s: %v, want the refusal", addr, err)
		}
	}
	if Dialer(time.Second, 0, true, refusal).Control != nil {
		t.Fatal("allowPrivate still checks addresses")
	}
}

type errRefused string

func (e errRefused) Error() string { return string(e) }
