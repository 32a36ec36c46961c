package cloudinit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxSpecSize caps the size of a node spec file Parse accepts.
const MaxSpecSize = 16 << 20

// maxNodes caps how many YAML nodes (after alias expansion) one document may
// make the decoder visit, so aliases cannot blow up the work.
const maxNodes = 1 << 20

// pos is a 1-based line:column in the spec file.
type pos struct{ line, col int }

// source remembers where each field of a parsed spec came from.
type source struct {
	file string
	dir  string         // directory relative file references resolve against
	pos  map[string]pos // value of each field
	key  map[string]pos // key of each mapping entry
	node string         // for a NodeConfigList entry, "nodes[i]": what "node" means
}

// at returns the position of field (a dotted path): its value, or for a
// missing field the key of the nearest parent that is present.
func (s *source) at(field string) pos {
	if s == nil {
		return pos{}
	}
	if s.node != "" && (field == "node" || strings.HasPrefix(field, "node.")) {
		field = s.node + field[len("node"):]
	}
	if p, ok := s.pos[field]; ok {
		return p
	}
	for f := field; ; {
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return s.pos[""]
		}
		f = f[:i]
		if p, ok := s.key[f]; ok {
			return p
		}
		if p, ok := s.pos[f]; ok {
			return p
		}
	}
}

// problems collects Problems for one spec.
type problems struct {
	src  *source
	list []Problem
}

func (ps *problems) add(field string, err error, format string, args ...any) {
	p := Problem{Field: field, Err: err}
	if format != "" {
		p.Detail = fmt.Sprintf(format, args...)
	}
	if ps.src != nil {
		p.File = ps.src.file
		at := ps.src.at(field)
		p.Line, p.Column = at.line, at.col
	}
	ps.list = append(ps.list, p)
}

// Parse decodes node specs from data, strictly: unknown and duplicate keys,
// wrong types, a missing or unsupported apiVersion/kind are all reported,
// each with file:line:column, in one *SpecError. data may hold several YAML
// documents, each a NodeConfig or a NodeConfigList; the result has one
// NodeConfig per node, in document order. Parse does not read the files a
// spec names (Load does) and does not validate values (Load and Render do).
func Parse(file string, data []byte) ([]*NodeConfig, error) {
	if len(data) > MaxSpecSize {
		return nil, &SpecError{Problems: []Problem{{File: file, Err: ErrSyntax, Detail: fmt.Sprintf("file is %d bytes, over the %d byte limit", len(data), MaxSpecSize)}}}
	}
	var (
		out  []*NodeConfig
		errs []Problem
	)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for docIndex := 0; ; docIndex++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			if docIndex == 0 {
				errs = append(errs, Problem{File: file, Err: ErrSyntax, Detail: "empty document"})
			}
			break
		}
		if err != nil {
			errs = append(errs, syntaxProblem(file, err))
			break
		}
		specs, ps := parseDocument(file, &root)
		out = append(out, specs...)
		errs = append(errs, ps...)
	}
	if len(errs) > 0 {
		return nil, &SpecError{Problems: errs}
	}
	return out, nil
}

// syntaxProblem turns a yaml.v3 parse error ("yaml: line 3: ...") into a Problem.
func syntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: file, Err: ErrSyntax, Detail: msg}
	var line int
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		p.Line, p.Column = line, 1
		if i := strings.Index(msg, ": "); i >= 0 {
			p.Detail = msg[i+2:]
		}
	}
	return p
}

// has reports whether a problem was already recorded for field.
func (ps *problems) has(field string) bool {
	for _, p := range ps.list {
		if p.Field == field {
			return true
		}
	}
	return false
}

func parseDocument(file string, root *yaml.Node) ([]*NodeConfig, []Problem) {
	d := &decoder{ps: problems{src: &source{file: file, pos: map[string]pos{}, key: map[string]pos{}}}}
	doc := root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			d.ps.add("", ErrSyntax, "empty document")
			return nil, d.ps.list
		}
		doc = doc.Content[0]
	}
	d.ps.src.pos[""] = pos{doc.Line, doc.Column}
	if doc.Kind != yaml.MappingNode {
		d.ps.add("", ErrSyntax, "a node spec is a mapping with apiVersion and kind")
		return nil, d.ps.list
	}
	apiVersion, kind := "", ""
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "apiVersion":
			apiVersion = v.Value
			d.ps.src.pos["apiVersion"] = pos{v.Line, v.Column}
		case "kind":
			kind = v.Value
			d.ps.src.pos["kind"] = pos{v.Line, v.Column}
		}
	}
	if apiVersion != APIVersion {
		if apiVersion == "" {
			d.ps.add("apiVersion", ErrAPIVersion, "missing; want %q", APIVersion)
		} else {
			d.ps.add("apiVersion", ErrAPIVersion, "got %q, want %q", apiVersion, APIVersion)
		}
		return nil, d.ps.list
	}
	switch kind {
	case KindNodeConfig:
		var nc NodeConfig
		d.decode(doc, reflect.ValueOf(&nc).Elem(), "")
		if len(d.ps.list) > 0 {
			return nil, d.ps.list
		}
		nc.source = d.ps.src
		return []*NodeConfig{&nc}, nil
	case KindNodeConfigList:
		var l NodeConfigList
		d.decode(doc, reflect.ValueOf(&l).Elem(), "")
		if len(l.Nodes) == 0 && len(d.ps.list) == 0 {
			d.ps.add("nodes", ErrRequired, "a NodeConfigList needs at least one node")
		}
		if len(d.ps.list) > 0 {
			return nil, d.ps.list
		}
		return expandList(&l, d.ps.src), nil
	case "":
		d.ps.add("kind", ErrAPIVersion, "missing; want %s or %s", KindNodeConfig, KindNodeConfigList)
	default:
		d.ps.add("kind", ErrAPIVersion, "got %q, want %s or %s", kind, KindNodeConfig, KindNodeConfigList)
	}
	return nil, d.ps.list
}

// expandList makes one NodeConfig per list entry. Each shares the list's
// cluster, proxy, ntp, keys and files; field positions are re-keyed so that
// "node.x" of the i-th config points at "nodes[i].x" in the file.
func expandList(l *NodeConfigList, src *source) []*NodeConfig {
	out := make([]*NodeConfig, len(l.Nodes))
	for i, n := range l.Nodes {
		out[i] = &NodeConfig{
			APIVersion:        l.APIVersion,
			Kind:              KindNodeConfig,
			Cluster:           l.Cluster,
			Node:              n,
			Proxy:             l.Proxy,
			NTP:               l.NTP,
			SSHAuthorizedKeys: l.SSHAuthorizedKeys,
			Files:             l.Files,
			Image:             l.Image,
			source:            src.forListNode(i),
		}
	}
	return out
}

// forListNode returns a view of s where "node..." resolves to "nodes[i]...".
// The position maps are shared, not copied: a list may have many nodes.
func (s *source) forListNode(i int) *source {
	return &source{file: s.file, dir: s.dir, pos: s.pos, key: s.key, node: fmt.Sprintf("nodes[%d]", i)}
}

// decoder walks yaml.Node trees into Go values by their yaml tags,
// recording every problem instead of stopping at the first.
type decoder struct {
	ps      problems
	visited int
}

// presence is implemented by types that need to know which keys were given.
type presence interface{ present(key string) }

func (n *Node) present(key string) {
	if key == "taints" {
		n.taintsSet = true
	}
}

var durationType = reflect.TypeOf(Duration{})

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.visited++
	if d.visited > maxNodes {
		if d.visited == maxNodes+1 {
			d.ps.add(path, ErrSyntax, "document too complex (more than %d nodes after expanding aliases)", maxNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.ps.add(path, ErrSyntax, "unresolved alias")
			return
		}
		n = n.Alias
	}
	d.ps.src.pos[path] = pos{n.Line, n.Column}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value
	}
	switch {
	case v.Type() == durationType:
		if !d.scalar(n, path, "!!str", "a duration such as \"90s\" or \"5m\"") {
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil || dur <= 0 {
			d.ps.add(path, ErrInvalidValue, "%q is not a positive duration such as \"90s\" or \"5m\"", n.Value)
			return
		}
		v.Set(reflect.ValueOf(Duration{dur}))
	case v.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path)
	case v.Kind() == reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.ps.add(path, ErrSyntax, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case v.Kind() == reflect.Map:
		d.decodeMap(n, v, path)
	case v.Kind() == reflect.String:
		if d.scalar(n, path, "!!str", "a string (quote it)") {
			v.SetString(n.Value)
		}
	case v.Kind() == reflect.Bool:
		if d.scalar(n, path, "!!bool", "true or false") {
			var b bool
			if err := n.Decode(&b); err != nil {
				d.ps.add(path, ErrSyntax, "want true or false, got %q", n.Value)
				return
			}
			v.SetBool(b)
		}
	case v.Kind() == reflect.Int:
		if d.scalar(n, path, "!!int", "an integer") {
			var i int
			if err := n.Decode(&i); err != nil {
				d.ps.add(path, ErrSyntax, "want an integer, got %q", n.Value)
				return
			}
			v.SetInt(int64(i))
		}
	default:
		panic("cloudinit: decoder cannot handle " + v.Type().String())
	}
}

// scalar reports whether n is a scalar with tag, adding a problem otherwise.
func (d *decoder) scalar(n *yaml.Node, path, tag, want string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tag {
		d.ps.add(path, ErrSyntax, "want %s, got %s", want, describe(n))
		return false
	}
	return true
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!int":
			return fmt.Sprintf("integer %s", n.Value)
		case "!!bool":
			return fmt.Sprintf("boolean %s", n.Value)
		case "!!float":
			return fmt.Sprintf("number %s", n.Value)
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
	}
	return "something else"
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.ps.add(path, ErrSyntax, "want a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.ps.src.pos[path] = pos{k.Line, k.Column}
			d.ps.add(path, ErrSyntax, "keys must be strings")
			continue
		}
		kp := path + "." + k.Value
		d.ps.src.key[kp] = pos{k.Line, k.Column}
		if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.ps.src.pos[kp] = pos{k.Line, k.Column}
			d.ps.add(kp, ErrDuplicateField, "")
			continue
		}
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, ev, kp)
		m.SetMapIndex(reflect.ValueOf(k.Value), ev)
	}
	v.Set(m)
}

type fieldInfo struct {
	index int
	name  string
}

var fieldCache sync.Map // reflect.Type -> map[string]fieldInfo

func fieldsOf(t reflect.Type) map[string]fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]fieldInfo)
	}
	m := map[string]fieldInfo{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if !sf.IsExported() || tag == "-" || tag == "" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		m[name] = fieldInfo{index: i, name: name}
	}
	fieldCache.Store(t, m)
	return m
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.ps.add(path, ErrSyntax, "want a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.ps.src.pos[path] = pos{k.Line, k.Column}
			d.ps.add(path, ErrSyntax, "keys must be strings")
			continue
		}
		kp := k.Value
		if path != "" {
			kp = path + "." + k.Value
		}
		d.ps.src.key[kp] = pos{k.Line, k.Column}
		f, ok := fields[k.Value]
		if !ok {
			d.ps.src.pos[kp] = pos{k.Line, k.Column}
			d.ps.add(kp, ErrUnknownField, "known fields: %s", knownFields(fields))
			continue
		}
		if seen[k.Value] {
			d.ps.src.pos[kp] = pos{k.Line, k.Column}
			d.ps.add(kp, ErrDuplicateField, "")
			continue
		}
		seen[k.Value] = true
		d.decode(val, v.Field(f.index), kp)
		if p, ok := v.Addr().Interface().(presence); ok {
			p.present(k.Value)
		}
	}
}

func knownFields(m map[string]fieldInfo) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
