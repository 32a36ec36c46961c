package cloudinit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/prebake/prebake/agent"
)

// AnnotationAgent is the image annotation naming the baked prebake-agent
// unit (the catalog recipes set dev.prebake.agent=prebake-agent.service).
// The CLI sets Options.Agent when an image has it.
const AnnotationAgent = "dev.prebake.agent"

// Join modes (node.joinMode).
const (
	JoinModeKubeadm = agent.ModeKubeadm
	JoinModeKubelet = agent.ModeKubelet
)

// kubeletStage is where the cloud-init path of the kubelet join mode writes
// the kubelet's files before its join script installs them (so that cloud-init
// never rewrites a file the agent installed).
const kubeletStage = RunDir + "/kubelet"

// Paths the kubelet join mode installs (those of the kubeadm kubelet
// drop-in in the catalog images).
const (
	kubeletCAPath    = "/etc/kubernetes/pki/ca.crt"
	kubeletFlagsPath = "/var/lib/kubelet/kubeadm-flags.env"
)

// renderAgentBlock is the prebake-agent block for d: the extra files, then the
// join's own files, in write order.
func (d *doc) renderAgentBlock() ([]byte, error) {
	c := &agent.Config{APIVersion: agent.APIVersion, Kind: agent.Kind, Node: d.name, JoinMode: d.joinMode}
	add := func(f outFile) {
		c.Files = append(c.Files, agent.File{Path: f.path, Mode: f.mode, Owner: f.owner, Content: f.content})
	}
	for _, f := range d.files {
		add(f)
	}
	if d.joinMode == JoinModeKubelet {
		for _, f := range d.kubeletFiles {
			add(f)
		}
	} else {
		add(outFile{path: agent.KubeadmJoinPath, content: d.joinConfig, mode: "0600", owner: "root:root"})
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("agent block: %w", err)
	}
	return agent.Block(c)
}

// kubeletFiles are the kubelet join mode's files: the CA, a bootstrap
// kubeconfig with the token (0600), the kubelet configuration and the flags
// file the kubeadm drop-in reads (node name, labels, taints, extra args).
func kubeletFiles(nc *NodeConfig) []outFile {
	c, n := &nc.Cluster, &nc.Node
	dns := c.ClusterDNS
	if len(dns) == 0 {
		dns = []string{"10.96.0.10"}
	}
	domain := c.ClusterDomain
	if domain == "" {
		domain = "cluster.local"
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    certificate-authority: %s
    server: https://%s
contexts:
- name: default
  context:
    cluster: default
    user: kubelet-bootstrap
current-context: default
users:
- name: kubelet-bootstrap
  user:
    token: %s
`, kubeletCAPath, c.APIServerEndpoint, c.BootstrapToken)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
`, kubeletCAPath)
	for _, ip := range dns {
		fmt.Fprintf(&cfg, "- %s\n", ip)
	}
	fmt.Fprintf(&cfg, "clusterDomain: %s\ncontainerRuntimeEndpoint: unix:///run/containerd/containerd.sock\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n", domain)
	args := []string{"--hostname-override=" + n.Name}
	for _, a := range kubeletArgs(n) {
		args = append(args, "--"+a[0]+"="+a[1])
	}
	if len(n.Taints) > 0 {
		ts := make([]string, len(n.Taints))
		for i, t := range n.Taints {
			ts[i] = t.Key
			if t.Value != "" {
				ts[i] += "=" + t.Value
			}
			ts[i] += ":" + t.Effect
		}
		args = append(args, "--register-with-taints="+strings.Join(ts, ","))
	}
	sort.Strings(args[1:])
	flags := fmt.Sprintf("KUBELET_KUBEADM_ARGS=%q\n", strings.Join(args, " "))
	return []outFile{
		{path: kubeletCAPath, content: c.CACert, mode: "0644", owner: "root:root"},
		{path: agent.BootstrapKubeconfigPath, content: []byte(kubeconfig), mode: "0600", owner: "root:root"},
		{path: agent.KubeletConfigPath, content: []byte(cfg.String()), mode: "0644", owner: "root:root"},
		{path: kubeletFlagsPath, content: []byte(flags), mode: "0644", owner: "root:root"},
	}
}

// kubeletJoinScript is the cloud-init path of the kubelet join mode: unless
// a join was claimed (the agent's stamp) or refused this boot, it claims the
// join, installs the staged files and starts the kubelet.
func kubeletJoinScript(name string, files []outFile, proxy bool) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# kubelet join (no kubeadm), rendered by prebake\nset -eu\n")
	b.WriteString("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH\n")
	fmt.Fprintf(&b, "for f in %s %s; do\n  if [ -e \"$f\" ]; then echo \"prebake: joined already ($f exists)\"; exit 0; fi\ndone\n", agent.StampPath, agent.KubeletConfPath)
	fmt.Fprintf(&b, "if [ -e %s ]; then echo \"prebake: prebake-agent refused this user-data; no join\" >&2; exit 1; fi\n", agent.FailedPath)
	for _, f := range files {
		fmt.Fprintf(&b, "install -D -m %s %s%s %s\n", f.mode, kubeletStage, f.path, f.path)
	}
	fmt.Fprintf(&b, "mkdir -p %s\necho 'cloud-init kubelet join of node %s' > %s\n", agent.StampPath[:strings.LastIndexByte(agent.StampPath, '/')], name, agent.StampPath)
	if proxy {
		b.WriteString("systemctl daemon-reload\nsystemctl restart containerd\n")
	}
	b.WriteString("systemctl restart kubelet\n")
	fmt.Fprintf(&b, "mkdir -p %s\necho success > %s\n", SentinelPath[:strings.LastIndexByte(SentinelPath, '/')], SentinelPath)
	return []byte(b.String())
}
