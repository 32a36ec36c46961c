package cloudinit

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// KubeadmPatch is one kubeadm patch (kubeadm's --patches directory, set
// through the Init/JoinConfiguration's patches.directory): kubeadm applies
// it to a static Pod manifest it writes, to the kubelet's configuration or to
// the CoreDNS Deployment. The way to change what kubeadm's configuration has
// no field for — for instance the API server's startup probe on slow or
// emulated machines.
type KubeadmPatch struct {
	// Target is etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubeletconfiguration or corednsdeployment.
	Target string `yaml:"target"`
	// Type is strategic (default), merge or json (RFC 6902).
	Type string `yaml:"type,omitempty"`
	// Patch is the patch's YAML or JSON text.
	Patch string `yaml:"patch"`
}

// PatchesDir is where the rendered user-data writes the node's kubeadm
// patches (file names target<N>+type.yaml, applied in that order).
const PatchesDir = "/etc/kubernetes/prebake-patches"

var (
	patchTargets             = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubeletconfiguration", "corednsdeployment"}
	controlPlanePatchTargets = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "corednsdeployment"}
	patchTypes               = []string{"strategic", "merge", "json"}
)

// validatePatches checks node.kubeadmPatches: known targets and types, a
// patch that parses, and control-plane targets only on control planes.
func validatePatches(n *Node, init bool, ps *problems) {
	for i, p := range n.KubeadmPatches {
		f := fmt.Sprintf("node.kubeadmPatches[%d]", i)
		switch {
		case p.Target == "":
			ps.add(f+".target", ErrRequired, "one of %s", strings.Join(patchTargets, ", "))
		case !slices.Contains(patchTargets, p.Target):
			ps.add(f+".target", ErrInvalidValue, "%q: want one of %s", p.Target, strings.Join(patchTargets, ", "))
		case !init && n.Role != RoleControlPlane && slices.Contains(controlPlanePatchTargets, p.Target):
			ps.add(f+".target", ErrInvalidValue, "%q is a control-plane component: a worker's kubeadm join applies only kubeletconfiguration patches", p.Target)
		}
		if p.Type != "" && !slices.Contains(patchTypes, p.Type) {
			ps.add(f+".type", ErrInvalidValue, "%q: want one of %s", p.Type, strings.Join(patchTypes, ", "))
		}
		if strings.TrimSpace(p.Patch) == "" {
			ps.add(f+".patch", ErrRequired, "the patch's YAML or JSON text")
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(p.Patch), &v); err != nil {
			ps.add(f+".patch", ErrInvalidValue, "not YAML or JSON: %v", err)
			continue
		}
		_, isList := v.([]any)
		_, isMap := v.(map[string]any)
		if p.Type == "json" && !isList {
			ps.add(f+".patch", ErrInvalidValue, "a json patch is a list of operations (RFC 6902)")
		} else if p.Type != "json" && !isMap {
			ps.add(f+".patch", ErrInvalidValue, "a %s patch is a mapping", patchType(p))
		}
	}
}

func patchType(p KubeadmPatch) string {
	if p.Type == "" {
		return "strategic"
	}
	return p.Type
}

// patchFiles are the node's patches as files under PatchesDir, named so
// that kubeadm applies them in the spec's order.
func patchFiles(n *Node) []outFile {
	var out []outFile
	for i, p := range n.KubeadmPatches {
		content := p.Patch
		if !strings.HasSuffix(content, "\n") {
			content += "\n"
		}
		out = append(out, outFile{
			path:    fmt.Sprintf("%s/%s%03d+%s.yaml", PatchesDir, p.Target, i, patchType(p)),
			content: []byte(content), mode: "0644", owner: "root:root",
		})
	}
	return out
}

// patchesConfig is the Init/JoinConfiguration's patches field: nil without
// patches.
func patchesConfig(n *Node) *patches {
	if len(n.KubeadmPatches) == 0 {
		return nil
	}
	return &patches{Directory: PatchesDir}
}
