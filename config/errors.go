package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a config file: where it is and what is wrong,
// e.g. `keygate.yaml:12: apis[0].routes[2].access: must be "public" or
// "token", got "tokn"`.
type Error struct {
	File   string
	Line   int    // 0 when the problem has no place in the file (an empty file)
	Path   string // setting path such as "apis[0].listen"; "" for the whole file
	Reason string

	// meant is the setting an unknown key was probably meant to be, whose
	// own "is required" would repeat the suggestion.
	meant string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Errors is every problem found in a config file, in file order, so one
// start shows all of them instead of one per attempt.
type Errors []*Error

func (errs Errors) Error() string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// positions maps setting paths to the lines they are on, so every
// validation error can name its line. Paths use the same notation as error
// messages: "apis[0].routes[2].access".
type positions struct {
	byPath  map[string]entry
	entries []entry // in document order, for finding the path of a line
}

type entry struct {
	path  string
	key   *yaml.Node // nil for list items
	value *yaml.Node
}

func indexNode(root *yaml.Node) *positions {
	p := &positions{byPath: map[string]entry{}}
	p.walk(root, "")
	return p
}

func (p *positions) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			child := joinPath(path, k.Value)
			p.add(entry{path: child, key: k, value: v})
			p.walk(v, child)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			child := fmt.Sprintf("%s[%d]", path, i)
			p.add(entry{path: child, value: v})
			p.walk(v, child)
		}
	}
	// Aliases are not followed: their content is indexed where the anchor
	// is defined, and following them could loop.
}

func (p *positions) add(e entry) {
	if _, seen := p.byPath[e.path]; !seen {
		p.byPath[e.path] = e
	}
	p.entries = append(p.entries, e)
}

// line is where a reader looks for the setting: its key, or the list item.
func (e entry) line() int {
	if e.key != nil {
		return e.key.Line
	}
	return e.value.Line
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// line returns the line of path, or of its nearest ancestor present in the
// file when the setting itself is missing (a required key left out).
func (p *positions) line(path string) int {
	for path != "" {
		if e, ok := p.byPath[path]; ok {
			return e.line()
		}
		path = parentPath(path)
	}
	return 0
}

func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// value returns the node at path, or nil.
func (p *positions) value(path string) *yaml.Node {
	return p.byPath[path].value
}

// The messages yaml.v3 puts in a *yaml.TypeError. They carry a line but no
// path; decodeError finds the path through the positions.
var (
	unknownFieldRe  = regexp.MustCompile("^line (\\d+): field (.+) not found in type (\\S+)$")
	duplicateKeyRe  = regexp.MustCompile("^line (\\d+): mapping key \"(.*)\" already defined at line (\\d+)$")
	wrongTypeRe     = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into (\\S+)$")
	syntaxLineRe    = regexp.MustCompile("^yaml: line (\\d+): (.*)$")
	fileTypesByName = map[string]reflect.Type{}
)

// registerTypes lets unknown-key errors list the keys a mapping accepts.
func registerTypes(values ...any) {
	for _, v := range values {
		t := reflect.TypeOf(v)
		fileTypesByName[t.String()] = t
	}
}

// decodeError turns one yaml.v3 type-error message into an *Error that names
// the setting's path and says what was expected, in the user's words.
func (p *positions) decodeError(file, msg string) *Error {
	if m := unknownFieldRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		e := p.keyAt(line, m[2])
		reason, suggested := unknownKeyReason(m[2], fileTypesByName[m[3]])
		out := &Error{File: file, Line: line, Path: e.path, Reason: reason}
		if suggested != "" {
			out.meant = joinPath(parentPath(e.path), suggested)
		}
		return out
	}
	if m := duplicateKeyRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		e := p.keyAt(line, m[2])
		return &Error{File: file, Line: line, Path: e.path, Reason: "is set twice (first on line " + m[3] + ")"}
	}
	if m := wrongTypeRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		e := p.valueAt(line, m[2], m[3])
		return &Error{File: file, Line: line, Path: e.path, Reason: "must be " + expectedWords(m[4]) + ", got " + describeNode(e.value, m[2], m[3])}
	}
	if m := syntaxLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Reason: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Reason: strings.TrimPrefix(msg, "yaml: ")}
}

func (p *positions) keyAt(line int, key string) entry {
	for _, e := range p.entries {
		if e.key != nil && e.key.Line == line && e.key.Value == key {
			return e
		}
	}
	return entry{path: key}
}

// valueAt finds the value yaml.v3 refused. Its message shows the value cut
// to 7 characters, so a prefix match on the same line is the best key.
func (p *positions) valueAt(line int, tag, shown string) entry {
	shown = strings.TrimSuffix(shown, "...")
	for _, e := range p.entries {
		v := e.value
		if v.Line == line && v.ShortTag() == tag && strings.HasPrefix(v.Value, shown) {
			return e
		}
	}
	return entry{}
}

// unknownKeyReason words an unknown key, suggesting a known one only when
// it is close: a typo, not merely another short word.
func unknownKeyReason(key string, t reflect.Type) (reason, suggested string) {
	known := yamlKeys(t)
	if len(known) == 0 {
		return "unknown key", ""
	}
	if best := closestKey(key, known); best != "" {
		return fmt.Sprintf("unknown key (did you mean %q?)", best), best
	}
	return "unknown key; known keys: " + strings.Join(known, ", "), ""
}

// closestKey returns the known key that key is most likely a typo of, or
// "". A suggestion needs an edit distance (a transposition counting as
// one edit) of at most a third of the longer word, and at least one:
// "acess" → "access", "levle" → "level", but "foo" → nothing, not "log".
func closestKey(key string, known []string) string {
	best, bestDist := "", -1
	for _, k := range known {
		d := editDistance(strings.ToLower(key), k)
		allowed := max(1, max(len(key), len(k))/3)
		if d <= allowed && (bestDist < 0 || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// yamlKeys lists the keys a config struct accepts, sorted.
func yamlKeys(t reflect.Type) []string {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	return keys
}

// expectedWords says in words what a Go type in a yaml.v3 message accepts.
func expectedWords(goType string) string {
	goType = strings.TrimPrefix(goType, "*")
	switch {
	case goType == "int":
		return "a whole number"
	case goType == "float64":
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a single value"
	case goType == "config.rateLimitSetting":
		return "a rate limit such as {key: ip, limit: 10, period: 1m}, or none"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a mapping of settings"
}

func describeNode(n *yaml.Node, tag, shown string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!str":
		if n != nil {
			return strconv.Quote(n.Value)
		}
		return strconv.Quote(shown)
	}
	if n != nil {
		return n.Value
	}
	return shown
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two neighbouring characters each
// count as one edit. It decides whether to suggest a key for a typo.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
