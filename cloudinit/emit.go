package cloudinit

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// A small YAML writer for the documents prebake renders. yaml.v3's general
// emitter was most of the cost of rendering a fleet; the documents here only
// need block mappings, block and flow sequences of scalars, and scalars that
// are plain when that is unambiguous to every YAML reader (PyYAML's YAML 1.1
// in cloud-init, Go's in kubeadm), double-quoted otherwise, or literal blocks
// for file contents. Tests check the output against yaml.v3 and PyYAML.

// plainSafe reports whether s can be written as a plain scalar and read back
// as the same string by YAML 1.1 and 1.2 readers: it starts with a letter or
// '/' (or is a dotted run of three or more numbers, like an IP address), uses
// no indicator characters, has spaces only singly between other characters
// and never after ':' or before '#', and is not a boolean or null word (which
// start with letters; numbers, dates and .inf do not).
func plainSafe(s string) bool {
	if s == "" || s[len(s)-1] == ':' || s[len(s)-1] == ' ' {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '/') {
		return dottedNumbers(s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '/', c == '=', c == ',', c == '@', c == '+', c == '-', c == ':':
		case c == ' ':
			if s[i-1] == ':' || s[i-1] == ' ' || s[i+1] == '#' || s[i+1] == ' ' {
				return false
			}
		default:
			return false
		}
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	return true
}

// dottedNumbers matches N.N.N[.N…]: never a number, date or time in YAML.
func dottedNumbers(s string) bool {
	dots := 0
	prevDot := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if prevDot {
				return false
			}
			dots++
			prevDot = true
		case c >= '0' && c <= '9':
			prevDot = false
		default:
			return false
		}
	}
	return dots >= 2 && !prevDot
}

// quoted writes s as a YAML double-quoted scalar. strconv.Quote's escapes
// (\n, \t, \", \\, \xXX, \uXXXX, \UXXXXXXXX, \a, \b, \f, \r, \v) are all YAML
// escapes too; s must be valid UTF-8 (validation ensures it).
func quoted(s string) string {
	return strconv.Quote(s)
}

func scalarText(s string) string {
	if plainSafe(s) {
		return s
	}
	return quoted(s)
}

// literalOK reports whether s can be a literal block scalar: printable
// UTF-8 lines, no carriage returns, not starting with whitespace or an empty
// line (those would need an indentation indicator).
func literalOK(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	if s[0] == ' ' || s[0] == '\t' || s[0] == '\n' {
		return false
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if r == '\r' || r == '\uFEFF' || !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// writeLiteral writes s as a literal block whose lines are indented by
// indent spaces; the header goes on the current line.
func writeLiteral(b *bytes.Buffer, s string, indent int) {
	body := s
	switch {
	case strings.HasSuffix(s, "\n\n"):
		b.WriteString("|+\n")
	case strings.HasSuffix(s, "\n"):
		b.WriteString("|\n")
		body = s[:len(s)-1]
	default:
		b.WriteString("|-\n")
	}
	body = strings.TrimSuffix(body, "\n")
	for _, line := range strings.Split(body, "\n") {
		if line != "" {
			b.WriteString(strings.Repeat(" ", indent))
			b.WriteString(line)
		}
		b.WriteByte('\n')
	}
}

// writeScalar writes a scalar node after "key: " or "- ", ending the line.
// indent is where a literal block's lines go.
func writeScalar(b *bytes.Buffer, n *yaml.Node, indent int) {
	switch {
	case n.Tag == "!!null":
		b.WriteString("null\n")
	case n.Tag == "!!bool" || n.Tag == "!!int":
		b.WriteString(n.Value)
		b.WriteByte('\n')
	case n.Style == yaml.LiteralStyle && literalOK(n.Value):
		writeLiteral(b, n.Value, indent)
	case n.Style == yaml.DoubleQuotedStyle:
		b.WriteString(quoted(n.Value))
		b.WriteByte('\n')
	default:
		b.WriteString(scalarText(n.Value))
		b.WriteByte('\n')
	}
}

func writeFlow(b *bytes.Buffer, n *yaml.Node) {
	b.WriteByte('[')
	for i, c := range n.Content {
		if i > 0 {
			b.WriteString(", ")
		}
		if c.Tag == "!!str" {
			// ',' ends an item in flow context.
			if plainSafe(c.Value) && !strings.Contains(c.Value, ",") {
				b.WriteString(c.Value)
			} else {
				b.WriteString(quoted(c.Value))
			}
		} else {
			b.WriteString(c.Value)
		}
	}
	b.WriteByte(']')
}

// writeValue writes the value of a mapping entry or sequence item whose
// line has been started ("key:" or "-"), at nesting indent.
func writeValue(b *bytes.Buffer, n *yaml.Node, indent int, afterDash bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		b.WriteByte(' ')
		writeScalar(b, n, indent)
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			b.WriteString(" []\n")
			return
		}
		if n.Style == yaml.FlowStyle {
			b.WriteByte(' ')
			writeFlow(b, n)
			b.WriteByte('\n')
			return
		}
		b.WriteByte('\n')
		writeSeq(b, n, indent)
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			b.WriteString(" {}\n")
			return
		}
		if afterDash {
			b.WriteByte(' ')
			writeMapping(b, n, indent, true)
			return
		}
		b.WriteByte('\n')
		writeMapping(b, n, indent, false)
	}
}

func writeMapping(b *bytes.Buffer, n *yaml.Node, indent int, firstInline bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if i > 0 || !firstInline {
			b.WriteString(strings.Repeat(" ", indent))
		}
		b.WriteString(scalarText(n.Content[i].Value))
		b.WriteByte(':')
		writeValue(b, n.Content[i+1], indent+2, false)
	}
}

func writeSeq(b *bytes.Buffer, n *yaml.Node, indent int) {
	for _, c := range n.Content {
		b.WriteString(strings.Repeat(" ", indent))
		b.WriteByte('-')
		writeValue(b, c, indent+2, true)
	}
}

// emitYAML writes a mapping node as a YAML document (no "---").
func emitYAML(b *bytes.Buffer, root *yaml.Node) {
	writeMapping(b, root, 0, false)
}

// toNode converts a Go value to a node tree by its JSON tags, with
// encoding/json's rules (omitempty, inline embedded structs, nil as null,
// sorted map keys), so the result means to kubeadm what json.Marshal's would.
func toNode(v reflect.Value) *yaml.Node {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		m := ymap()
		structFields(v, m)
		return m
	case reflect.Slice:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		s := yseq()
		for i := 0; i < v.Len(); i++ {
			s.Content = append(s.Content, toNode(v.Index(i)))
		}
		return s
	case reflect.Map:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		m := ymap()
		for _, k := range keys {
			m.Content = append(m.Content, ystr(k), toNode(v.MapIndex(reflect.ValueOf(k))))
		}
		return m
	case reflect.String:
		return ystr(v.String())
	case reflect.Bool:
		return ybool(v.Bool())
	case reflect.Int, reflect.Int32, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	}
	panic(fmt.Sprintf("cloudinit: toNode cannot handle %s", v.Type()))
}

func structFields(v reflect.Value, m *yaml.Node) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if sf.Anonymous && name == "" {
			structFields(fv, m)
			continue
		}
		if !sf.IsExported() || tag == "-" {
			continue
		}
		if strings.Contains(opts, "omitempty") && isEmpty(fv) {
			continue
		}
		m.Content = append(m.Content, ystr(name), toNode(fv))
	}
}

// isEmpty is encoding/json's omitempty test (structs are never empty).
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}
