package catalog

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prebake/prebake/recipes"
)

// TestControlPlaneRecipeDiffers says how the two catalog recipes differ:
// kubernetes-control-plane installs everything kubernetes-node installs,
// byte for byte, plus one component, init: prebake-init.path (enabled) and
// prebake-init.service, which run `kubeadm init` from `prebake render
// --init`, announced by the dev.prebake.init-unit annotation. The
// control-plane container images are added per build (--pre-pull), so they
// are in neither recipe.
func TestControlPlaneRecipeDiffers(t *testing.T) {
	resolve := func(name string) *recipes.Resolved {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		set, err := e.Variables(map[string]string{"kubernetes": "1.36.4"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.Resolve(recipes.ResolveOptions{Set: set, Lock: e.Lock, Locked: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	node, cp := resolve("kubernetes-node"), resolve("kubernetes-control-plane")
	if _, ok := node.Annotations[recipes.AnnotationInitUnit]; ok {
		t.Errorf("kubernetes-node declares an init unit")
	}
	if got := cp.Annotations[recipes.AnnotationInitUnit]; got != "prebake-init.path" {
		t.Errorf("kubernetes-control-plane: %s = %q, want prebake-init.path", recipes.AnnotationInitUnit, got)
	}
	if node.Annotations[recipes.AnnotationJoinUnit] != cp.Annotations[recipes.AnnotationJoinUnit] {
		t.Errorf("join units differ: a control plane joins like a worker")
	}
	for i := range node.Builds {
		nc, cc := node.Builds[i].Components, cp.Builds[i].Components
		var names []string
		byName := map[string]recipes.ResolvedComponent{}
		for _, c := range cc {
			names = append(names, c.Name)
			byName[c.Name] = c
		}
		for _, c := range nc {
			if !reflect.DeepEqual(byName[c.Name], c) {
				t.Errorf("%s: component %s differs between the recipes", node.Builds[i].Arch, c.Name)
			}
			delete(byName, c.Name)
		}
		if len(byName) != 1 {
			t.Fatalf("%s: kubernetes-control-plane's components %v: want kubernetes-node's plus init", node.Builds[i].Arch, names)
		}
		init, ok := byName["init"]
		if !ok {
			t.Fatalf("%s: no init component in %v", node.Builds[i].Arch, names)
		}
		var paths []string
		for _, f := range init.Files {
			paths = append(paths, f.Path)
		}
		for _, want := range []string{"/etc/systemd/system/prebake-init.path", "/etc/systemd/system/prebake-init.service",
			"/etc/systemd/system/multi-user.target.wants/prebake-init.path"} {
			if !slices.Contains(paths, want) {
				t.Errorf("init component lacks %s (has %s)", want, strings.Join(paths, ", "))
			}
		}
		if len(init.Sources) != 0 || len(init.Images) != 0 {
			t.Errorf("init downloads or pulls something: %+v", init)
		}
		for _, f := range init.Files {
			if strings.HasSuffix(f.Path, "prebake-init.service") && !strings.Contains(string(f.Content), "kubeadm init --config /run/prebake/kubeadm-init.yaml $KUBEADM_INIT_FLAGS") {
				t.Errorf("prebake-init.service does not run the rendered init:\n%s", f.Content)
			}
		}
	}
}
