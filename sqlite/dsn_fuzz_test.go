package sqlite

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzDSN holds the connection string built from a configured database
// path to what SQLite reads from it: the file named is exactly the path
// (SQLite's URI rules: an authority after "file://" must be empty or
// "localhost", %HH is decoded, '?' and '#' end the path), and the query
// carries keygate's pragmas and nothing a path could add.
func FuzzDSN(f *testing.F) {
	for _, path := range []string{
		"keygate.db", "/var/lib/keygate/keygate.db", "//var/lib/keygate.db",
		"data dir #1/key?gate%20.db", "x.db?_pragma=query_only(0)&_txlock=deferred",
		"file:other.db", "a:b.db", "%", "%zz", "/tmp/%2e%2e/x", "localhost/x", "//localhost/x",
	} {
		f.Add(path)
	}
	f.Fuzz(func(t *testing.T, path string) {
		if path == "" || strings.IndexByte(path, 0) >= 0 {
			t.Skip() // refused by Open, or not a file name
		}
		for _, readOnly := range []bool{false, true} {
			s := &Store{path: path, busyTimeout: 5e9}
			dsn := s.dsn(readOnly)
			uri, query, _ := strings.Cut(dsn, "?")
			if strings.ContainsRune(uri, '#') {
				t.Fatalf("dsn(%q) = %q: '#' in the file part ends SQLite's path", path, dsn)
			}
			got, err := sqliteURIPath(uri)
			if err != nil {
				t.Fatalf("dsn(%q) = %q: %v", path, dsn, err)
			}
			if got != path {
				t.Fatalf("dsn(%q) = %q names the file %q", path, dsn, got)
			}
			values, err := url.ParseQuery(query)
			if err != nil {
				t.Fatalf("dsn(%q) = %q: query: %v", path, dsn, err)
			}
			want := url.Values{"_pragma": {"busy_timeout(5000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"}}
			if readOnly {
				want["_pragma"] = append(want["_pragma"], "query_only(1)")
			} else {
				want["_txlock"] = []string{"immediate"}
			}
			if len(values) != len(want) {
				t.Fatalf("dsn(%q) = %q: parameters %v, want %v", path, dsn, values, want)
			}
			for k, v := range want {
				if !slices.Equal(values[k], v) {
					t.Fatalf("dsn(%q) = %q: %s = %v, want %v", path, dsn, k, values[k], v)
				}
			}
		}
	})
}

// sqliteURIPath reads a "file:" URI's path as SQLite's URI parser does
// (https://sqlite.org/uri.html).
func sqliteURIPath(uri string) (string, error) {
	rest, ok := strings.CutPrefix(uri, "file:")
	if !ok {
		return "", errURI("no file: scheme")
	}
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		authority, path, _ := strings.Cut(after, "/")
		if authority != "" && authority != "localhost" {
			return "", errURI("invalid uri authority: " + authority)
		}
		rest = "/" + path
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '%' && i+2 < len(rest) && isHexDigit(rest[i+1]) && isHexDigit(rest[i+2]) {
			b.WriteByte(unhex(rest[i+1])<<4 | unhex(rest[i+2]))
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

type errURI string

func (e errURI) Error() string { return string(e) }

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
