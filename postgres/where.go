package postgres

import (
	"fmt"
	"strconv"
	"strings"
)

// where builds a WHERE clause from the filter fields that are set. Lists
// build their conditions this way rather than one statement that compares
// each parameter with the empty string, which a cached generic plan cannot
// use an index for.
type where struct {
	conds []string
	args  []any
}

// equal adds "column = value" unless value is empty (empty matches all).
func (w *where) equal(column, value string) {
	if value != "" {
		w.add(column+" = %s", value)
	}
}

// add adds a condition; each %s in cond is the placeholder of the next arg.
func (w *where) add(cond string, args ...any) {
	placeholders := make([]any, len(args))
	for i, a := range args {
		placeholders[i] = w.arg(a)
	}
	w.conds = append(w.conds, fmt.Sprintf(cond, placeholders...))
}

// arg adds an argument and returns its placeholder, for the parts of a
// statement after the WHERE clause (LIMIT).
func (w *where) arg(a any) string {
	w.args = append(w.args, a)
	return "$" + strconv.Itoa(len(w.args))
}

// String returns " WHERE …", or "" when nothing was added.
func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
