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
	if Dialer(time.Second, 0, true, refusal).Control != nil {
		t.Fatal("allowPrivate still checks addresses")
	}
}

type errRefused string

func (e errRefused) Error() string { return string(e) }
