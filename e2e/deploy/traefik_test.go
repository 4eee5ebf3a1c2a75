package deploy_test

import (
	"net/http"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/keygate/keygate"
)

// Traefik cannot run in the suite (docs/forward-auth.md), so this reads
// the committed recipe and applies what Traefik's ForwardAuth does with
// authRequestHeaders: the auth request carries, of the client's headers,
// only those Header.Values finds for each name listed. A method override
// must reach keygate in every spelling Traefik passes on to the API
// whole, the canonical ones and those with underscores, or keygate checks
// a POST that the API serves as a DELETE.
func TestTraefikRecipeSendsMethodOverridesToKeygate(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/traefik/dynamic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var recipe struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth *struct {
					AuthRequestHeaders []string `yaml:"authRequestHeaders"`
				} `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(raw, &recipe); err != nil {
		t.Fatal(err)
	}
	spellings := []string{
		"X-HTTP-Method-Override", "x-http-method-override", "X-HTTP-Method", "X-Method-Override",
		"X_HTTP_Method_Override", "x_http_method_override", "X_HTTP_Method", "X_Method_Override",
	}
	checked := 0
	for name, m := range recipe.HTTP.Middlewares {
		if m.ForwardAuth == nil {
			continue
		}
		checked++
		for _, spelling := range spellings {
			client := http.Header{}
			client.Add(spelling, "DELETE") // stored canonical, as net/http reads it
			toKeygate := http.Header{}
			for _, allowed := range m.ForwardAuth.AuthRequestHeaders {
				if v := client.Values(allowed); len(v) > 0 {
					toKeygate[http.CanonicalHeaderKey(allowed)] = v
				}
			}
			if len(keygate.MethodOverrides(toKeygate)) == 0 {
				t.Errorf("%s: a client's %s never reaches keygate", name, spelling)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no forwardAuth middleware in the recipe")
	}
}
