package dashboard

import (
	"io/fs"
	"path"
	"strings"
	"testing"
)

// TestEveryPageParses: the pages are parsed on first use rather than when
// the dashboard is made, so a template that fails to parse must fail here.
func TestEveryPageParses(t *testing.T) {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	p := parsedPages()
	want := 0
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" || strings.HasPrefix(base, "partial_") {
			continue
		}
		want++
		tmpl := p[strings.TrimSuffix(base, ".html")]
		if tmpl == nil {
			t.Errorf("%s: no page", base)
			continue
		}
		if tmpl.Lookup(base) == nil || tmpl.Lookup("layout.html") == nil {
			t.Errorf("%s: the page lacks itself or the layout", base)
		}
	}
	if want == 0 || len(p) != want {
		t.Errorf("%d pages parsed, %d page files", len(p), want)
	}
}
