// Package cloudinit renders the per-node half of a prebake node: a node spec
// (what differs per machine) becomes cloud-init user-data, a MIME multipart
// document or an Ignition config that only writes the kubeadm join
// configuration and credentials and starts the join.
//
// Everything static (runtime, kubelet, kernel settings) is already in the
// image, so the rendered document never installs packages or downloads
// anything at boot. Render is pure and deterministic: the same spec and
// options give the same bytes. Load is the only function that touches the file
// system (to read the spec and the CA and token files it names). This package
// must not import the registry: the caller passes the Kubernetes version and
// the image's join unit as plain options.
//
// It is over 2.5k lines because one node spec feeds everything here and
// every part reads the same unexported document model: strict parsing with
// file:line:column for every problem (parse.go), the validation of every
// field (validate.go), kubeadm's configuration types for v1beta3 and v1beta4,
// join and init (kubeadm.go, init.go), and three output formats with a YAML
// emitter of their own (render.go, emit.go, ignition.go). Splitting the
// formats from the spec would export that model only for the split's sake.
package cloudinit

import (
	"time"
)

// APIVersion is the only node spec version this package reads.
const APIVersion = "prebake.dev/v1alpha1"

// Kinds of node spec documents.
const (
	KindNodeConfig     = "NodeConfig"
	KindNodeConfigList = "NodeConfigList"
)

// Node roles.
const (
	RoleWorker       = "worker"
	RoleControlPlane = "control-plane"
)

// NodeConfig is one node's spec (apiVersion prebake.dev/v1alpha1, kind
// NodeConfig). A NodeConfigList expands into one NodeConfig per node.
type NodeConfig struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Cluster says which cluster to join and how to trust it.
	Cluster Cluster `yaml:"cluster"`
	// Node is this machine's identity and kubelet registration.
	Node Node `yaml:"node"`
	// Proxy, when set, is applied to containerd and the kubelet through
	// systemd drop-ins.
	Proxy *Proxy `yaml:"proxy,omitempty"`
	// NTP servers and pools for the node's time sync client.
	NTP *NTP `yaml:"ntp,omitempty"`
	// SSHAuthorizedKeys for the image's default user.
	SSHAuthorizedKeys []string `yaml:"sshAuthorizedKeys,omitempty"`
	// Files are extra files to write before the join.
	Files []File `yaml:"files,omitempty"`
	// Image is the REF@DIGEST the node boots; its annotations give the
	// Kubernetes version and the join unit. Informational for Render (which
	// takes both as options); the CLI resolves it.
	Image string `yaml:"image,omitempty"`

	// source locates fields for error messages; nil for specs built in Go.
	source *source
	// init: the spec is the first control plane's (LoadInit, Options.Init).
	init bool
}

// NodeConfigList is a fleet: the shared parts once, then one entry per node.
type NodeConfigList struct {
	APIVersion        string   `yaml:"apiVersion"`
	Kind              string   `yaml:"kind"`
	Cluster           Cluster  `yaml:"cluster"`
	Nodes             []Node   `yaml:"nodes"`
	Proxy             *Proxy   `yaml:"proxy,omitempty"`
	NTP               *NTP     `yaml:"ntp,omitempty"`
	SSHAuthorizedKeys []string `yaml:"sshAuthorizedKeys,omitempty"`
	Files             []File   `yaml:"files,omitempty"`
	Image             string   `yaml:"image,omitempty"`
}

// Cluster names the cluster to join and pins its CA.
type Cluster struct {
	// Name is descriptive (a DNS label); it is not rendered.
	Name string `yaml:"name,omitempty"`
	// APIServerEndpoint is host:port of the API server (or its load balancer).
	APIServerEndpoint string `yaml:"apiServerEndpoint"`
	// CACertFile is a PEM file with the cluster CA certificate(s), relative to
	// the spec file. prebake computes the sha256 SPKI pin from it.
	CACertFile string `yaml:"caCertFile,omitempty"`
	// CACertHashes are pins ("sha256:<hex>"). With CACertFile too, the
	// computed hash must be among them.
	CACertHashes []string `yaml:"caCertHashes,omitempty"`
	// BootstrapToken is the kubeadm bootstrap token (abcdef.0123456789abcdef).
	BootstrapToken string `yaml:"bootstrapToken,omitempty"`
	// BootstrapTokenFile holds the token instead, relative to the spec file.
	BootstrapTokenFile string `yaml:"bootstrapTokenFile,omitempty"`
	// UnsafeSkipCAVerification joins without CA pinning; refused unless
	// Options.AllowUnsafeSkipCAVerification is set.
	UnsafeSkipCAVerification bool `yaml:"unsafeSkipCAVerification,omitempty"`
	// DiscoveryTimeout overrides kubeadm's discovery timeout (e.g. "5m").
	DiscoveryTimeout Duration `yaml:"discoveryTimeout,omitempty"`
	// ClusterDNS and ClusterDomain go into the kubelet configuration of the
	// kubelet join mode (kubeadm's join reads them from the cluster);
	// defaults 10.96.0.10 and cluster.local.
	ClusterDNS    []string `yaml:"clusterDNS,omitempty"`
	ClusterDomain string   `yaml:"clusterDomain,omitempty"`

	// CAKeyFile is a PEM file with the CA's private key, relative to the
	// spec file: only for the first control plane (render --init), which
	// then signs with this CA instead of generating one, so that joins can
	// be rendered with its pin before it boots. Written 0600 to
	// /etc/kubernetes/pki/ca.key; never logged. Deliver such user-data
	// through the one-time bootstrap documents (--bootstrap-url).
	CAKeyFile string `yaml:"caKeyFile,omitempty"`
	// PodSubnet, ServiceSubnet and ImageRepository go into the first
	// control plane's ClusterConfiguration (render --init); kubeadm's
	// defaults when empty.
	PodSubnet string `yaml:"podSubnet,omitempty"`
	// InitTimeout is how long kubeadm init waits for the kubelet and the
	// control-plane components to be healthy and for each API call
	// (render --init; kubeadm's defaults are 4m and 1m, short for slow or
	// emulated machines).
	InitTimeout     Duration `yaml:"initTimeout,omitempty"`
	ServiceSubnet   string   `yaml:"serviceSubnet,omitempty"`
	ImageRepository string   `yaml:"imageRepository,omitempty"`

	// CACert is the PEM of the CA certificate(s). Load fills it from
	// CACertFile; Go callers may set it directly.
	CACert []byte `yaml:"-"`
	// CAKey is the PEM of the CA's private key (CAKeyFile).
	CAKey []byte `yaml:"-"`

	tokenFromFile string // BootstrapToken was read from BootstrapTokenFile
}

// Node is one machine.
type Node struct {
	// Name is the Kubernetes Node name (DNS-1123 subdomain). Required.
	Name string `yaml:"name"`
	// Hostname, when set, is written as the machine's hostname.
	Hostname string `yaml:"hostname,omitempty"`
	// Role is worker (default) or control-plane.
	Role string `yaml:"role,omitempty"`
	// CertificateKey (64 hex) decrypts the uploaded control-plane
	// certificates; control-plane joins only.
	CertificateKey string `yaml:"certificateKey,omitempty"`
	// AdvertiseAddress is the IP this control-plane node's API server
	// advertises; control-plane joins only.
	AdvertiseAddress string `yaml:"advertiseAddress,omitempty"`
	// BindPort is that API server's port (kubeadm default 6443).
	BindPort int `yaml:"bindPort,omitempty"`
	// Labels are registered through the kubelet's --node-labels.
	Labels map[string]string `yaml:"labels,omitempty"`
	// Taints are registered with the Node. Unset on a control-plane node
	// means kubeadm's default control-plane taint; an empty list means none.
	Taints []Taint `yaml:"taints,omitempty"`
	// KubeletExtraArgs are kubelet flags without leading dashes.
	KubeletExtraArgs map[string]string `yaml:"kubeletExtraArgs,omitempty"`
	// MaxPods sets the kubelet's --max-pods.
	MaxPods int `yaml:"maxPods,omitempty"`
	// JoinMode is kubeadm (default: kubeadm join with the rendered
	// JoinConfiguration) or kubelet (worker only, nodeadm-style: the
	// kubelet's configuration and a bootstrap kubeconfig are written and
	// the kubelet started; needs cluster.caCertFile). See docs/agent.md.
	JoinMode string `yaml:"joinMode,omitempty"`
	// KubeadmPatches are kubeadm patches for this node (the static Pod
	// manifests, the kubelet's configuration, CoreDNS), kubeadm join and
	// init only.
	KubeadmPatches []KubeadmPatch `yaml:"kubeadmPatches,omitempty"`

	taintsSet bool // taints key present (distinguishes [] from unset)
}

// Taint is a Kubernetes node taint.
type Taint struct {
	Key    string `yaml:"key"`
	Value  string `yaml:"value,omitempty"`
	Effect string `yaml:"effect"`
}

// Proxy settings for containerd and the kubelet.
type Proxy struct {
	HTTP    string   `yaml:"http,omitempty"`
	HTTPS   string   `yaml:"https,omitempty"`
	NoProxy []string `yaml:"noProxy,omitempty"`
}

// NTP servers and pools.
type NTP struct {
	Servers []string `yaml:"servers,omitempty"`
	Pools   []string `yaml:"pools,omitempty"`
}

// File is an extra file to write on the node.
type File struct {
	// Path is absolute. Paths under /etc/kubernetes/pki are refused.
	Path string `yaml:"path"`
	// Content is the file's text; or ContentFile, relative to the spec file
	// and inside its directory (symlinks followed).
	Content     string `yaml:"content,omitempty"`
	ContentFile string `yaml:"contentFile,omitempty"`
	// Permissions is an octal mode string. Default "0644", or "0600" when
	// the content holds a private key; always "0600" when Secret.
	Permissions string `yaml:"permissions,omitempty"`
	// Owner is user:group (default root:root).
	Owner string `yaml:"owner,omitempty"`
	// Secret forces mode 0600.
	Secret bool `yaml:"secret,omitempty"`

	loaded bool // Content was read from ContentFile
}

// Duration is a time.Duration written as Go duration text ("90s", "5m").
type Duration struct {
	time.Duration
}
