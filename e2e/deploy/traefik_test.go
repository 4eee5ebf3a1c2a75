package deploy_test

import (
	"net/http"
	"os"
	"regexp"
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
	spellings := []string{
		"X-HTTP-Method-Override", "x-http-method-override", "X-HTTP-Method", "X-Method-Override",
		"X_HTTP_Method_Override", "x_http_method_override", "X_HTTP_Method", "X_Method_Override",
	}
	for name, fa := range traefikForwardAuths(t) {
		for _, spelling := range spellings {
			client := http.Header{}
			client.Add(spelling, "DELETE") // stored canonical, as net/http reads it
			toKeygate := http.Header{}
			for _, allowed := range fa.AuthRequestHeaders {
				if v := client.Values(allowed); len(v) > 0 {
					toKeygate[http.CanonicalHeaderKey(allowed)] = v
				}
			}
			if len(keygate.MethodOverrides(toKeygate)) == 0 {
				t.Errorf("%s: a client's %s never reaches keygate", name, spelling)
			}
		}
	}
}

// On a pass, Traefik deletes the client's headers named in
// authResponseHeaders (Header.Del: that spelling only) and those whose
// name authResponseHeadersRegex matches, then copies keygate's. The API
// must get keygate's identity headers and no client header that a PHP,
// CGI or WSGI upstream reads under one of their names: X_Keygate_Org is
// HTTP_X_KEYGATE_ORG as much as X-Keygate-Org is.
func TestTraefikRecipeReplacesTheClientsIdentityHeaders(t *testing.T) {
	for name, fa := range traefikForwardAuths(t) {
		var regex *regexp.Regexp
		if fa.AuthResponseHeadersRegex != "" {
			regex = regexp.MustCompile(fa.AuthResponseHeadersRegex)
		}
		for _, public := range []bool{false, true} {
			req := http.Header{}
			for _, spelling := range []string{"X-Keygate-Org", "X_Keygate_Org", "X-Keygate_Org", "x_keygate-org", "X-Keygate-Token_Id", "X_KEYGATE_SCOPES", "X_Keygate_Identity"} {
				req.Add(spelling, "forged")
			}
			keygatesPass := http.Header{}
			if !public { // a public route's pass carries no identity
				for _, h := range identityHeaders {
					keygatesPass.Set(h, "keygate")
				}
			}
			for _, h := range fa.AuthResponseHeaders {
				key := http.CanonicalHeaderKey(h)
				req.Del(key)
				if v := keygatesPass[key]; len(v) > 0 {
					req[key] = v
				}
			}
			if regex != nil {
				for key := range req {
					if regex.MatchString(key) {
						req.Del(key)
					}
				}
				for key, v := range keygatesPass {
					if regex.MatchString(key) {
						req[key] = v
					}
				}
			}
			for key, v := range req {
				for _, id := range identityHeaders {
					if keygate.HeaderNameIs(key, id) && (key != id || len(v) != 1 || v[0] != "keygate") {
						t.Errorf("%s (public route %v): the API gets %s: %q", name, public, key, v)
					}
				}
			}
		}
	}
}

type traefikForwardAuth struct {
	AuthRequestHeaders       []string `yaml:"authRequestHeaders"`
	AuthResponseHeaders      []string `yaml:"authResponseHeaders"`
	AuthResponseHeadersRegex string   `yaml:"authResponseHeadersRegex"`
}

// traefikForwardAuths reads the committed recipe's forwardAuth
// middlewares by name.
func traefikForwardAuths(t *testing.T) map[string]traefikForwardAuth {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/traefik/dynamic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var recipe struct {
		HTTP struct {
			Middlewares map[string]struct {
				ForwardAuth *traefikForwardAuth `yaml:"forwardAuth"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(raw, &recipe); err != nil {
		t.Fatal(err)
	}
	out := map[string]traefikForwardAuth{}
	for name, m := range recipe.HTTP.Middlewares {
		if m.ForwardAuth != nil {
			out[name] = *m.ForwardAuth
		}
	}
	if len(out) == 0 {
		t.Fatal("no forwardAuth middleware in the recipe")
	}
	return out
}
