package cloudinit

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"
)

// trickyStrings are scalars whose plain form would be misread by some YAML
// reader, or that need escapes.
var trickyStrings = []string{
	"plain", "true", "False", "yes", "No", "on", "OFF", "y", "n", "null", "Null", "~", "",
	"0644", "0600", "644", "1e3", "0x1F", "0o17", "1_000", ".inf", ".NaN", "-.inf", "1:20", "190:20:30",
	"2001-12-14", "2001-12-14t21:59:43.10-05:00", "12:30", "3m0s", "10.0.0.1", "10.0.0.1:6443", "1.36.4", "1.5",
	"a: b", "a:b", "a #b", "a#b", "#x", "- x", "-x", "? x", "[a]", "{a: b}", "*ref", "&anchor", "!tag", "|", ">",
	"'single'", "\"double\"", "%percent", "@at", "`tick`", "a\nb", "a\n", "a\n\n", "\na", " lead", "trail ", "tab\there",
	"\ttab", "cr\rlf", "nul\x00byte", "bell\a", "esc\x1b", "unicode é ü ß", "emoji 🚀", "line\u2028sep", "bom\ufeff",
	"key: value\nkind: Evil", "---", "...", "--- x", "a  b", "=", "<<", "ssh-ed25519 AAAA+/= c@d", "http://p:3128",
	".svc", "node.kubernetes.io/pool=a,b=c", "sha256:abc", "x:", "abc:",
}

// emitDoc writes a document with s as a plain mapping value, a literal block,
// a block sequence item and a flow sequence item.
func emitDoc(s string) []byte {
	root := ymap(
		ystr("plain"), ystr(s),
		ystr("literal"), yblock(s),
		ystr("seq"), yseq(ystr(s)),
		ystr("flow"), yflow(ystr(s), ystr("x")),
		ystr("nested"), yseq(ymap(ystr("content"), yblock(s), ystr("k"), ystr(s))),
	)
	var b bytes.Buffer
	emitYAML(&b, root)
	return b.Bytes()
}

type emitted struct {
	Plain   string   `yaml:"plain" json:"plain"`
	Literal string   `yaml:"literal" json:"literal"`
	Seq     []string `yaml:"seq" json:"seq"`
	Flow    []string `yaml:"flow" json:"flow"`
	Nested  []struct {
		Content string `yaml:"content" json:"content"`
		K       string `yaml:"k" json:"k"`
	} `yaml:"nested" json:"nested"`
}

func checkEmitted(t *testing.T, s string, got emitted) {
	t.Helper()
	if got.Plain != s || got.Literal != s || len(got.Seq) != 1 || got.Seq[0] != s ||
		len(got.Flow) != 2 || got.Flow[0] != s || len(got.Nested) != 1 || got.Nested[0].Content != s || got.Nested[0].K != s {
		t.Errorf("%q did not survive: %+v", s, got)
	}
}

func TestEmitRoundTripYAMLv3(t *testing.T) {
	for _, s := range trickyStrings {
		doc := emitDoc(s)
		var got emitted
		if err := yaml.Unmarshal(doc, &got); err != nil {
			t.Errorf("%q: %v\n%s", s, err, doc)
			continue
		}
		checkEmitted(t, s, got)
	}
}

// TestEmitRoundTripPyYAML reads the same documents with PyYAML's safe_load,
// which is how cloud-init reads user-data (YAML 1.1).
func TestEmitRoundTripPyYAML(t *testing.T) {
	py := debianPython(t)
	var docs []string
	for _, s := range trickyStrings {
		docs = append(docs, string(emitDoc(s)))
	}
	in, _ := json.Marshal(docs)
	script := `
import json, sys, yaml
docs = json.load(sys.stdin)
json.dump([yaml.safe_load(d) for d in docs], sys.stdout)
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("PyYAML: %v\n%s", err, stderr.String())
	}
	var got []emitted
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for i, s := range trickyStrings {
		checkEmitted(t, s, got[i])
	}
}

func FuzzEmitScalar(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // validation refuses non-UTF-8 content
		}
		doc := emitDoc(s)
		var got emitted
		if err := yaml.Unmarshal(doc, &got); err != nil {
			t.Fatalf("%q: %v\n%s", s, err, doc)
		}
		checkEmitted(t, s, got)
	})
}

// TestJoinConfigurationMatchesJSON: the YAML written from the kubeadm types
// means exactly what encoding/json's marshalling of them means (kubeadm
// reads its config as JSON).
func TestJoinConfigurationMatchesJSON(t *testing.T) {
	for _, spec := range []string{"worker", "control-plane", "fleet"} {
		for _, nc := range mustLoad(t, "testdata/"+spec+".yaml") {
			for _, api := range []string{kubeadmV1beta3, kubeadmV1beta4} {
				node := nc.Node
				if node.Role == "" {
					node.Role = RoleWorker
				}
				in := joinInput{node: &node, cluster: &nc.Cluster, caHashes: mustLoadHashes(t, nc)}
				v, err := joinObject(api, in)
				if err != nil {
					t.Fatal(err)
				}
				want, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				y, err := joinConfiguration(api, in)
				if err != nil {
					t.Fatal(err)
				}
				got, err := sigsyaml.YAMLToJSON(y)
				if err != nil {
					t.Fatalf("%s: %v\n%s", spec, err, y)
				}
				var w, g any
				_ = json.Unmarshal(want, &w)
				_ = json.Unmarshal(got, &g)
				if diff := cmp.Diff(w, g); diff != "" {
					t.Errorf("%s %s %s (-json +yaml):\n%s", spec, node.Name, api, diff)
				}
				if !reflect.DeepEqual(w, g) || strings.Contains(string(y), "\t") {
					t.Errorf("%s: tabs or mismatch", spec)
				}
			}
		}
	}
}
