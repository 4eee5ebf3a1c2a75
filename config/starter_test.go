package config

import (
	"strings"
	"testing"

	"github.com/keygate/keygate"
)

// The file `keygate init` writes is accepted unchanged, for every preset,
// and holds one token route.
func TestStarterParses(t *testing.T) {
	for _, preset := range []string{"cannmenus", "canskan", "custom"} {
		text := Starter(StarterParams{API: "inventory", Preset: preset, Upstream: "http://127.0.0.1:9000"})
		cfg, err := Parse("keygate.yaml", text)
		if err != nil {
			t.Fatalf("%s:\n%s\n%v", preset, text, err)
		}
		api := cfg.API("inventory")
		if api == nil || api.Preset.Name != preset || api.Upstream != "http://127.0.0.1:9000" || api.Listen != "127.0.0.1:8080" ||
			len(api.Routes) != 1 || api.Routes[0].Access != keygate.AccessToken || cfg.DataDir != "." || cfg.Admin.Listen != "127.0.0.1:8090" {
			t.Errorf("%s: %+v", preset, api)
		}
		for i, line := range strings.Split(string(text), "\n") {
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") || strings.Contains(line, "#") {
				continue
			}
			// A setting without a comment on its line must follow one.
			prev := strings.Split(string(text), "\n")[i-1]
			if !strings.Contains(prev, "#") && !strings.HasSuffix(strings.TrimSpace(line), ":") && !strings.HasSuffix(strings.TrimSpace(prev), ":") {
				t.Errorf("%s: line %d %q is not commented", preset, i+1, line)
			}
		}
	}
	// A bad name or URL is reported like any config mistake, with its line.
	_, err := Parse("keygate.yaml", Starter(StarterParams{API: "My API", Preset: "cannmenus", Upstream: "ftp://x"}))
	if err == nil || !strings.Contains(err.Error(), "apis[0].name") || !strings.Contains(err.Error(), "apis[0].upstream") {
		t.Errorf("bad params: %v", err)
	}
}
