// Tests of the CI definitions in examples/ci: each passes its ecosystem's own
// validator, and the prebake commands in it parse with this prebake's flags.
package ci_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/prebake/prebake/internal/testenv"
)

// The GitHub Actions workflow passes actionlint (expressions, contexts,
// action inputs, job dependencies).
func TestGitHubActionsWorkflow(t *testing.T) {
	actionlint := testenv.Tool(t, "actionlint")
	out, err := exec.Command(actionlint, "-no-color", "-shellcheck=", "-pyflakes=", "github-actions.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("actionlint github-actions.yaml: %v\n%s", err, out)
	}
}

// The Tekton Task and Pipeline pass Tekton's own validation (its v1 types'
// SetDefaults and Validate, the admission webhook's checks) plus the
// cross-object checks tekton-validate adds (params, workspaces and results
// of the referenced Tasks); a broken copy fails, so the validator runs.
func TestTektonPipeline(t *testing.T) {
	bin := testenv.Tool(t, "tekton-validate")
	files := []string{"tekton/tasks.yaml", "tekton/pipeline.yaml"}
	validates(t, bin, files)
	broken(t, bin, files, "tekton/pipeline.yaml", "results.IMAGES[*]", "results.IMAGE[*]", "Task prebake-build has no result IMAGE")
	broken(t, bin, files, "tekton/tasks.yaml", "      command: [prebake]", "      command: [prebake]\n      commands: [x]", `unknown field "commands"`)
	broken(t, bin, files, "tekton/pipeline.yaml", "$(params.shard-count)", "$(params.shard-total)", "non-existent variable")
}

// The Argo WorkflowTemplate and CronWorkflow pass Argo's own validation
// (workflow/validate, as the Argo server and `argo lint` run it); a broken
// copy fails.
func TestArgoWorkflowTemplate(t *testing.T) {
	bin := testenv.Tool(t, "argo-validate")
	files := []string{"argo/workflow-template.yaml"}
	validates(t, bin, files)
	broken(t, bin, files, "argo/workflow-template.yaml", "{{inputs.parameters.shard}}/", "{{inputs.parameters.shards}}/", "failed to resolve {{inputs.parameters.shards}}")
	broken(t, bin, files, "argo/workflow-template.yaml", "withParam:", "withParams:", `unknown field "withParams"`)
	broken(t, bin, files, "argo/workflow-template.yaml", "template: promote\n", "template: promotion\n", "template name 'promotion' undefined")
}

func validates(t *testing.T, bin string, files []string) {
	t.Helper()
	out, err := exec.Command(bin, files...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(files, " "), err, out)
	}
}

// broken validates files with one of them changed (old replaced by new)
// and wants the validator to fail saying want.
func broken(t *testing.T, bin string, files []string, file, old, new, want string) {
	t.Helper()
	dir := t.TempDir()
	var args []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == file {
			if !strings.Contains(string(b), old) {
				t.Fatalf("%s has no %q to break", f, old)
			}
			b = []byte(strings.Replace(string(b), old, new, 1))
		}
		p := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("%s with %q for %q: %v, want a failure saying %q:\n%s", file, new, old, err, want, out)
	}
}

// The GitLab pipeline's structure, as GitLab checks it when it loads the
// file: no package reachable from here ships GitLab's CI JSON schema (it is
// in check-jsonschema on PyPI, which this machine cannot reach), so the rules
// are checked here: every job's stage is declared, every extends and needs
// names a job, every job has a script (its own or an extended one), and the
// shard count is the job's parallel.
func TestGitLabPipelineStructure(t *testing.T) {
	b, err := os.ReadFile("gitlab-ci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	keywords := map[string]bool{"variables": true, "stages": true, "default": true, "include": true, "workflow": true}
	stages := map[string]bool{}
	for _, s := range doc["stages"].([]any) {
		stages[s.(string)] = true
	}
	jobs := map[string]map[string]any{}
	for name, v := range doc {
		if keywords[name] {
			continue
		}
		j, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a job", name)
		}
		jobs[name] = j
	}
	for name, j := range jobs {
		if strings.HasPrefix(name, ".") {
			continue
		}
		if s, _ := j["stage"].(string); !stages[s] {
			t.Errorf("job %s: stage %q is not in stages", name, s)
		}
		script := j["script"] != nil
		if e, ok := j["extends"].(string); ok {
			if jobs[e] == nil {
				t.Errorf("job %s extends %s: no such job", name, e)
			} else if jobs[e]["script"] != nil {
				script = true
			}
		}
		if !script {
			t.Errorf("job %s has no script", name)
		}
		if needs, ok := j["needs"].([]any); ok {
			for _, n := range needs {
				if jobs[n.(string)] == nil {
					t.Errorf("job %s needs %s: no such job", name, n)
				}
			}
		}
	}
	if p, _ := jobs["build"]["parallel"].(int); p < 2 || !strings.Contains(string(b), `--shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"`) {
		t.Errorf("build: parallel %v, want the shards as parallel jobs", jobs["build"]["parallel"])
	}
}

// Every `prebake VERB … --flag` in the examples names a verb and flags this
// prebake has (a renamed flag fails here, not in a user's nightly): in shell
// scripts, and in the command/args of the containers and steps that run the
// prebake image (Tekton, Argo).
func TestExamplesUseRealFlags(t *testing.T) {
	bin := testenv.Prebake(t)
	helps := map[string]string{}
	check := func(file string, words []string) {
		if len(words) == 0 {
			return
		}
		verb := words[0]
		if _, ok := helps[verb]; !ok {
			help, err := exec.Command(bin, verb, "--help").CombinedOutput()
			if err != nil {
				t.Errorf("%s: prebake %s: %v", file, verb, err)
			}
			helps[verb] = string(help)
		}
		for _, w := range words[1:] {
			if fl := flagWord.FindString(w); fl != "" && !strings.Contains(helps[verb], fl+" ") {
				t.Errorf("%s: prebake %s has no flag %s", file, verb, fl)
			}
		}
	}
	commands := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// Shell: join continued lines, then look at each prebake command.
		text := strings.ReplaceAll(string(b), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			_, cmd, ok := strings.Cut(line, "prebake ")
			if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") || strings.Contains(line, "go install") {
				continue
			}
			if f := strings.Fields(cmd); len(f) > 0 {
				commands++
				check(path, f)
			}
		}
		// Containers: command [prebake] with args, anywhere in any document.
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		for {
			var doc any
			if err := dec.Decode(&doc); err != nil {
				break
			}
			walkContainers(doc, func(args []string) {
				commands++
				check(path, args)
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checked %d prebake commands", commands)
	if commands < 8 {
		t.Errorf("found %d prebake commands in the examples: the scan is broken", commands)
	}
}

var flagWord = regexp.MustCompile(`^--[a-z][a-z-]+`)

// walkContainers calls f with the args of every map whose command is
// [prebake].
func walkContainers(v any, f func(args []string)) {
	switch v := v.(type) {
	case map[string]any:
		if c, ok := v["command"].([]any); ok && len(c) == 1 && c[0] == "prebake" {
			var args []string
			for _, a := range v["args"].([]any) {
				args = append(args, a.(string))
			}
			f(args)
		}
		for _, x := range v {
			walkContainers(x, f)
		}
	case []any:
		for _, x := range v {
			walkContainers(x, f)
		}
	}
}
