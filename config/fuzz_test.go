package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/gateway"
)

// FuzzParse feeds arbitrary files to config.Parse. A file is either a
// config whose every API is usable by the gateway, or refused with at least one error,
// each naming the file, a line within it (or none) and a reason — never a
// panic, never an error without a place — and parsing is deterministic.
func FuzzParse(f *testing.F) {
	// config.Example() is tested by the docs test; at 20 KB it starves the mutator.
	f.Add([]byte("apis:\n  - name: menus\n    preset: cannmenus\n    listen: 127.0.0.1:8080\n    upstream: http://127.0.0.1:9000\n    routes:\n      - {methods: [GET], path: /v2/products, access: token}\n"))
	f.Add([]byte("apis: [{name: x, preset: custom, custom_preset: {token_header: X-Key}}]"))
	f.Add([]byte("---\na: 1\n---\nb: 2\n"))
	f.Add([]byte("data_dir: &a [*a]\n"))
	f.Add([]byte("trusted_proxies: [10.0.0.0/33, '::1']\nrate_limiter: {backend: redis}\n"))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte("apis:\n  - name: a\n    routes:\n      - path: '/p/{x'\n        methods: [GET]\n"))
	f.Add([]byte("oauth: {clients: [{id: c, redirect_uris: ['http://evil.example/cb']}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			t.Skip()
		}
		cfg, err := parseWithin(t, data, 10*time.Second)
		// YAML breaks lines at CRLF, a lone CR and LF alike.
		lines := strings.Count(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(data)), "\n") + 1
		if err != nil {
			if cfg != nil {
				t.Fatal("both a config and an error")
			}
			var errs config.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %v is not a list of config errors", err, err)
			}
			for _, e := range errs {
				if e.File != "fuzz.yaml" || e.Reason == "" || e.Line < 0 || e.Line > lines {
					t.Fatalf("error without a place or reason: %+v (file has %d lines)", e, lines)
				}
			}
			_, again := config.Parse("fuzz.yaml", data)
			if again == nil || again.Error() != err.Error() {
				t.Fatalf("parsing twice gave different answers:\n%v\n%v", err, again)
			}
			return
		}
		for _, api := range cfg.APIs() {
			if api.Name == "" || api.Preset == nil || api.Tokens.BasePrefix == "" || !strings.HasSuffix(api.Tokens.BasePrefix, "_") {
				t.Fatalf("accepted an unusable API: %+v", api)
			}
			// What the config accepts, the gateway can serve: a route
			// it could not build would be a start-up failure without a line.
			if _, err := gateway.New(gateway.Config{API: api}); err != nil {
				t.Fatalf("accepted API %s, but the gateway refuses it: %v", api.Name, err)
			}
			for _, r := range api.Routes {
				if len(r.Methods) == 0 || !strings.HasPrefix(r.Path, "/") {
					t.Fatalf("accepted an unusable route: %+v", r)
				}
			}
		}
	})
}

// parseWithin parses data and fails the input when that takes longer than
// limit: a file that keeps keygate from starting is a bug like a panic.
func parseWithin(t *testing.T, data []byte, limit time.Duration) (*config.Config, error) {
	type result struct {
		cfg *config.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := config.Parse("fuzz.yaml", data)
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-time.After(limit):
		t.Fatalf("config.Parse did not return within %v", limit)
		return nil, nil
	}
}
