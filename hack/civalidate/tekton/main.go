// Command tekton-validate checks Tekton Tasks and Pipelines the way the
// Tekton Pipelines admission webhook does: each YAML document is decoded
// strictly (an unknown field is an error) into tektoncd/pipeline's v1 types,
// defaulted (SetDefaults) and validated (Validate) with the default feature
// flags. It then checks what the webhook cannot, since it sees one object at
// a time: every taskRef of a Pipeline that names a Task in the given files
// passes only params that Task declares and every param it requires, and
// every $(tasks.NAME.results.RESULT) names a result that Task declares.
//
// Usage: tekton-validate FILE...   (exit status 1 on any problem)
//
// It is its own Go module so that prebake's module does not depend on
// Tekton; hack/tools.sh builds it (tekton-validate).
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"
)

type doc struct {
	file string
	line int
	kind string
	raw  []byte
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tekton-validate FILE...")
		os.Exit(2)
	}
	var problems []string
	report := func(d doc, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", d.file, d.line, d.kind, fmt.Sprintf(format, args...)))
	}
	ctx := apis.WithinCreate(context.Background())
	tasks := map[string]*v1.Task{}
	type pl struct {
		d doc
		p *v1.Pipeline
	}
	var pipelines []pl
	for _, f := range os.Args[1:] {
		docs, err := split(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, d := range docs {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(d.raw, &meta); err != nil {
				report(d, "%v", err)
				continue
			}
			d.kind = meta.Kind
			if meta.APIVersion != "tekton.dev/v1" {
				report(d, "apiVersion %q, want tekton.dev/v1", meta.APIVersion)
				continue
			}
			var obj interface {
				apis.Validatable
				apis.Defaultable
			}
			switch meta.Kind {
			case "Task":
				t := &v1.Task{}
				obj = t
				if err := yaml.UnmarshalStrict(d.raw, t); err != nil {
					report(d, "%v", err)
					continue
				}
				tasks[t.Name] = t
			case "Pipeline":
				p := &v1.Pipeline{}
				obj = p
				if err := yaml.UnmarshalStrict(d.raw, p); err != nil {
					report(d, "%v", err)
					continue
				}
				pipelines = append(pipelines, pl{d, p})
			default:
				report(d, "kind %q: want Task or Pipeline", meta.Kind)
				continue
			}
			obj.SetDefaults(ctx)
			if fe := obj.Validate(ctx); fe != nil {
				for _, e := range strings.Split(fe.Error(), "\n") {
					report(d, "%s", e)
				}
			}
		}
	}
	for _, x := range pipelines {
		for _, pt := range append(append([]v1.PipelineTask{}, x.p.Spec.Tasks...), x.p.Spec.Finally...) {
			if pt.TaskRef == nil {
				continue
			}
			t, ok := tasks[pt.TaskRef.Name]
			if !ok || t == nil {
				report(x.d, "task %s: taskRef %q is not a Task in the files given", pt.Name, pt.TaskRef.Name)
				continue
			}
			given := map[string]bool{}
			for _, p := range pt.Params {
				given[p.Name] = true
			}
			if pt.Matrix != nil {
				for _, p := range pt.Matrix.Params {
					given[p.Name] = true
				}
			}
			declared := map[string]bool{}
			for _, p := range t.Spec.Params {
				declared[p.Name] = true
				if p.Default == nil && !given[p.Name] {
					report(x.d, "task %s: Task %s's param %s has no default and is not given", pt.Name, t.Name, p.Name)
				}
			}
			for n := range given {
				if !declared[n] {
					report(x.d, "task %s: Task %s has no param %s", pt.Name, t.Name, n)
				}
			}
			wsDeclared := map[string]bool{}
			for _, w := range t.Spec.Workspaces {
				wsDeclared[w.Name] = true
			}
			for _, w := range pt.Workspaces {
				if !wsDeclared[w.Name] {
					report(x.d, "task %s: Task %s has no workspace %s", pt.Name, t.Name, w.Name)
				}
			}
		}
		// Result references, anywhere in the Pipeline.
		byName := map[string]string{}
		for _, pt := range append(append([]v1.PipelineTask{}, x.p.Spec.Tasks...), x.p.Spec.Finally...) {
			if pt.TaskRef != nil {
				byName[pt.Name] = pt.TaskRef.Name
			}
		}
		for _, m := range resultRef.FindAllStringSubmatch(string(x.d.raw), -1) {
			t := tasks[byName[m[1]]]
			if t == nil {
				continue
			}
			found := false
			for _, r := range t.Spec.Results {
				found = found || r.Name == m[2]
			}
			if !found {
				report(x.d, "%s): Task %s has no result %s", m[0], t.Name, m[2])
			}
		}
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

var resultRef = regexp.MustCompile(`\$\(tasks\.([a-z0-9-]+)\.results\.([A-Za-z0-9_-]+)`)

// split returns the YAML documents of file with the line each starts on.
func split(file string) ([]doc, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var docs []doc
	start := 1
	var cur bytes.Buffer
	flush := func() {
		if strings.TrimSpace(stripComments(cur.String())) != "" {
			// The document's line is its first line that is not a comment.
			line := start
			for _, l := range strings.Split(cur.String(), "\n") {
				if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
					break
				}
				line++
			}
			docs = append(docs, doc{file: file, line: line, raw: append([]byte(nil), cur.Bytes()...)})
		}
		cur.Reset()
	}
	for i, l := range strings.SplitAfter(string(b), "\n") {
		if strings.TrimRight(l, "\r\n") == "---" {
			flush()
			start = i + 2
			continue
		}
		cur.WriteString(l)
	}
	flush()
	return docs, nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
