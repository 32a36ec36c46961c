package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebake/prebake/agent"
	"github.com/prebake/prebake/cloudinit"
	"github.com/prebake/prebake/recipes"
)

// An image that bakes prebake-agent (dev.prebake.agent) gets the agent's
// block; --agent does the same with --kubernetes and needs it.
func TestRenderAgentBlock(t *testing.T) {
	ref := annotatedLayout(t, map[string]string{
		recipes.AnnotationKubernetesVersion: "1.36.4",
		recipes.AnnotationJoinUnit:          "prebake-join.path",
		cloudinit.AnnotationAgent:           "prebake-agent.service",
	})
	spec := filepath.Join(cloudinitTestdata, "worker.yaml")
	out, _, err := runPrebake(t, "render", spec, "--image", ref)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.Extract([]byte(out))
	if err != nil || c.Node != "worker-1" {
		t.Fatalf("--image with dev.prebake.agent: %v", err)
	}
	flag, _, err := runPrebake(t, "render", spec, "--kubernetes", "1.36.4", "--join-unit", "prebake-join.path", "--agent")
	if err != nil {
		t.Fatal(err)
	}
	if flag != out {
		t.Error("--kubernetes --agent differs from the annotated image's render")
	}
	plain, _, err := runPrebake(t, "render", spec, "--kubernetes", "1.36.4", "--join-unit", "prebake-join.path")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain, "prebake-agent/v1") {
		t.Error("a render without the agent has its block")
	}
	if _, _, err := runPrebake(t, "render", spec, "--image", ref, "--agent"); err == nil || !strings.Contains(err.Error(), "--agent goes with --kubernetes") {
		t.Errorf("--agent with --image: %v", err)
	}
}
