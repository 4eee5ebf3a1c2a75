package client

import (
	"os/exec"
	"strings"
	"testing"
)

// The Go client is embedded in other people's services: it must depend on
// keygate's root package and the standard library only, never drag in the
// server's metrics, JWT, database or protobuf packages.
func TestClientDependsOnTheRootPackageAndStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	t.Logf("non-standard packages the client builds with: %d: %v", len(deps), deps)
	for _, p := range deps {
		for _, banned := range []string{"prometheus", "protobuf", "go-jose", "jackc/pgx", "sqlite"} {
			if strings.Contains(p, banned) {
				t.Errorf("the client depends on %s", p)
			}
		}
		if p != "github.com/keygate/keygate" && p != "github.com/keygate/keygate/client" {
			t.Errorf("the client depends on %s; only the root package and the standard library are allowed", p)
		}
	}
}
