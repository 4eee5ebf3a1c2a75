package schema

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadOrdersByVersion(t *testing.T) {
	all, err := Load(fstest.MapFS{
		"migrations/0010_ten.sql": {Data: []byte("SELECT 10")},
		"migrations/0002_two.sql": {Data: []byte("SELECT 2")},
		"migrations/notes.txt":    {Data: []byte("not a migration")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Version != 2 || all[0].Name != "0002_two.sql" || all[0].SQL != "SELECT 2" || all[1].Version != 10 {
		t.Errorf("Load = %+v", all)
	}
}

func TestMigrationNamesAreChecked(t *testing.T) {
	for name, c := range map[string]struct {
		fsys fstest.MapFS
		want string
	}{
		"no number": {fstest.MapFS{"migrations/core.sql": {Data: []byte("SELECT 1")}}, "core.sql: name must start with a positive number"},
		"zero":      {fstest.MapFS{"migrations/0000_zero.sql": {Data: []byte("SELECT 1")}}, "0000_zero.sql: name must start with a positive number"},
		"duplicate": {fstest.MapFS{
			"migrations/0001_a.sql": {Data: []byte("SELECT 1")},
			"migrations/001_b.sql":  {Data: []byte("SELECT 1")},
		}, "share version 1"},
	} {
		if _, err := Load(c.fsys); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load = %v, want an error with %q", name, err, c.want)
		}
	}
}
