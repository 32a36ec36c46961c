package recipes

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/prebake/prebake/internal/lazyre"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every *ValidationError.
var ErrInvalid = errors.New("invalid recipe")

// Problem is one thing wrong with an input file, located at file:line:column.
type Problem struct {
	File   string
	Line   int
	Column int
	Field  string // path of the field, e.g. components[1].sources[0].sha256
	Msg    string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	}
	if p.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Field, p.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, p.Msg)
}

// ValidationError lists every problem found in an input, not just the first.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// pos is a location in a YAML file.
type pos struct{ line, col int }

// positions maps field paths to where they stand in the file.
type positions map[string]pos

// problems collects Problems for one file.
type problems struct {
	file string
	pos  positions
	list []Problem
}

// add records a problem at field (its closest known ancestor's position when
// the field itself is absent from the file).
func (p *problems) add(field, format string, args ...any) {
	pr := Problem{File: p.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	for f := field; ; {
		if at, ok := p.pos[f]; ok {
			pr.Line, pr.Column = at.line, at.col
			break
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			if at, ok := p.pos[""]; ok {
				pr.Line, pr.Column = at.line, at.col
			}
			break
		}
		f = f[:i]
	}
	p.list = append(p.list, pr)
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	// The same problem found once per platform is reported once.
	seen := map[Problem]bool{}
	var out []Problem
	for _, pr := range p.list {
		if !seen[pr] {
			seen[pr] = true
			out = append(out, pr)
		}
	}
	return &ValidationError{Problems: out}
}

// strictWalk checks that every key in n names a field of t (yaml tags), and
// records the position of every field path. It reports all unknown fields.
func strictWalk(n *yaml.Node, t reflect.Type, path string, p *problems) {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	p.pos[path] = pos{n.Line, n.Column}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fp := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				p.pos[fp] = pos{k.Line, k.Column}
				p.add(fp, "unknown field %q", k.Value)
				continue
			}
			strictWalk(v, ft, fp, p)
			p.pos[fp] = pos{k.Line, k.Column}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fp := path + "." + k.Value
			strictWalk(v, t.Elem(), fp, p)
			p.pos[fp] = pos{k.Line, k.Column}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, v := range n.Content {
			strictWalk(v, t.Elem(), path+"["+strconv.Itoa(i)+"]", p)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var yamlLineRE = lazyre.New(`^line (\d+): (.*)$`)

// decodeInto decodes n into v, turning yaml type errors into problems.
func decodeInto(n *yaml.Node, v any, p *problems) {
	err := n.Decode(v)
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			pr := Problem{File: p.file, Msg: e}
			if m := yamlLineRE.FindStringSubmatch(e); m != nil {
				pr.Line, _ = strconv.Atoi(m[1])
				pr.Column = 1
				pr.Msg = m[2]
			}
			p.list = append(p.list, pr)
		}
		return
	}
	p.list = append(p.list, Problem{File: p.file, Msg: err.Error()})
}

// Mode is a file mode, written in recipes as an octal string ("0755").
type Mode uint32

// ParseMode parses an octal file mode like "0755".
func ParseMode(s string) (Mode, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal file mode like \"0755\"", s)
	}
	return Mode(v), nil
}

// MarshalYAML writes the mode as a quoted octal string.
func (m Mode) MarshalYAML() (any, error) { return fmt.Sprintf("%04o", uint32(m)), nil }

// MarshalJSON writes the mode as an octal string.
func (m Mode) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%q", fmt.Sprintf("%04o", uint32(m)))), nil
}
