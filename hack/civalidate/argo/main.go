// Command argo-validate checks Argo Workflows definitions the way the Argo
// server and `argo lint` do: each YAML document is decoded strictly (an
// unknown field is an error) into argo-workflows' v1alpha1 types and passed
// to its workflow/validate package (ValidateWorkflowTemplate,
// ValidateCronWorkflow, ValidateWorkflow), with the WorkflowTemplates of
// every given file resolvable by workflowTemplateRef and templateRef.
//
// Usage: argo-validate FILE...   (exit status 1 on any problem)
//
// It is its own Go module so that prebake's module does not depend on Argo;
// hack/tools.sh builds it (argo-validate).
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/workflow/validate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

type doc struct {
	file string
	line int
	kind string
	raw  []byte
}

// templates resolves workflowTemplateRef and templateRef to the
// WorkflowTemplates of the files given.
type templates map[string]*wfv1.WorkflowTemplate

func (t templates) Get(name string) (*wfv1.WorkflowTemplate, error) {
	if w, ok := t[name]; ok {
		return w, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "argoproj.io", Resource: "workflowtemplates"}, name)
}

type clusterTemplates map[string]*wfv1.ClusterWorkflowTemplate

func (t clusterTemplates) Get(name string) (*wfv1.ClusterWorkflowTemplate, error) {
	if w, ok := t[name]; ok {
		return w, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "argoproj.io", Resource: "clusterworkflowtemplates"}, name)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: argo-validate FILE...")
		os.Exit(2)
	}
	var problems []string
	report := func(d doc, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s: %s", d.file, d.line, d.kind, fmt.Sprintf(format, args...)))
	}
	var docs []doc
	for _, f := range os.Args[1:] {
		ds, err := split(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		docs = append(docs, ds...)
	}
	// Decode everything first, so that references resolve in any order.
	wfts, cwfts := templates{}, clusterTemplates{}
	type decoded struct {
		d   doc
		obj any
	}
	var objs []decoded
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
		if meta.APIVersion != "argoproj.io/v1alpha1" {
			report(d, "apiVersion %q, want argoproj.io/v1alpha1", meta.APIVersion)
			continue
		}
		var obj any
		switch meta.Kind {
		case "WorkflowTemplate":
			obj = &wfv1.WorkflowTemplate{}
		case "ClusterWorkflowTemplate":
			obj = &wfv1.ClusterWorkflowTemplate{}
		case "CronWorkflow":
			obj = &wfv1.CronWorkflow{}
		case "Workflow":
			obj = &wfv1.Workflow{}
		default:
			report(d, "kind %q: want WorkflowTemplate, ClusterWorkflowTemplate, CronWorkflow or Workflow", meta.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict(d.raw, obj); err != nil {
			report(d, "%v", err)
			continue
		}
		switch o := obj.(type) {
		case *wfv1.WorkflowTemplate:
			wfts[o.Name] = o
		case *wfv1.ClusterWorkflowTemplate:
			cwfts[o.Name] = o
		}
		objs = append(objs, decoded{d, obj})
	}
	opts := validate.ValidateOpts{Lint: true}
	for _, x := range objs {
		var err error
		switch o := x.obj.(type) {
		case *wfv1.WorkflowTemplate:
			err = validate.ValidateWorkflowTemplate(wfts, cwfts, o, nil, opts)
		case *wfv1.ClusterWorkflowTemplate:
			err = validate.ValidateClusterWorkflowTemplate(wfts, cwfts, o, nil, opts)
		case *wfv1.CronWorkflow:
			err = validate.ValidateCronWorkflow(context.Background(), wfts, cwfts, o, nil)
		case *wfv1.Workflow:
			err = validate.ValidateWorkflow(wfts, cwfts, o, nil, opts)
		}
		if err != nil {
			report(x.d, "%v", err)
		}
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// split returns the YAML documents of file, each with its first line that
// is not a comment.
func split(file string) ([]doc, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var docs []doc
	start := 1
	var cur bytes.Buffer
	flush := func() {
		line, content := start, false
		for _, l := range strings.Split(cur.String(), "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				content = true
				break
			}
			line++
		}
		if content {
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
