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
// prebake has (a renamed flag fails here, not in a user's nightly).
func TestExamplesUseRealFlags(t *testing.T) {
	bin := testenv.Prebake(t)
	files, _ := os.ReadDir(".")
	verbFlags := regexp.MustCompile(`--[a-z][a-z-]+`)
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		// Join continued lines, then look at each prebake command.
		text := strings.ReplaceAll(string(b), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			_, cmd, ok := strings.Cut(line, "prebake ")
			if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") || strings.Contains(line, "go install") {
				continue
			}
			fields := strings.Fields(cmd)
			if len(fields) == 0 {
				continue
			}
			help, err := exec.Command(bin, fields[0], "--help").CombinedOutput()
			if err != nil {
				t.Errorf("%s: prebake %s: %v", f.Name(), fields[0], err)
				continue
			}
			for _, fl := range verbFlags.FindAllString(cmd, -1) {
				if !strings.Contains(string(help), fl+" ") {
					t.Errorf("%s: prebake %s has no flag %s", f.Name(), fields[0], fl)
				}
			}
		}
	}
}
