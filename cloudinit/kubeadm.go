package cloudinit

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The kubeadm JoinConfiguration is marshalled from these types, which mirror
// the field names and shapes of kubeadm's kubeadm.k8s.io/v1beta3 (Kubernetes
// 1.22-1.30) and v1beta4 (1.31 and later) APIs, restricted to what a join
// needs. They carry JSON tags because kubeadm decodes its config as JSON
// (through sigs.k8s.io/yaml), so omitempty and null mean here what they mean
// to kubeadm. Marshalling structs, never filling a text template, means no
// value (a label, a taint) can inject YAML.

const (
	kubeadmGroup   = "kubeadm.k8s.io"
	kubeadmV1beta3 = kubeadmGroup + "/v1beta3"
	kubeadmV1beta4 = kubeadmGroup + "/v1beta4"
)

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

type taintV1 struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// taintList is marshalled as null when nil (kubeadm: default taints) and
// [] when empty (kubeadm: no taints).
type taintList []taintV1

type apiEndpoint struct {
	AdvertiseAddress string `json:"advertiseAddress,omitempty"`
	BindPort         int32  `json:"bindPort,omitempty"`
}

type joinControlPlane struct {
	LocalAPIEndpoint apiEndpoint `json:"localAPIEndpoint,omitempty"`
	CertificateKey   string      `json:"certificateKey,omitempty"`
}

type bootstrapTokenDiscovery struct {
	Token                    string   `json:"token"`
	APIServerEndpoint        string   `json:"apiServerEndpoint,omitempty"`
	CACertHashes             []string `json:"caCertHashes,omitempty"`
	UnsafeSkipCAVerification bool     `json:"unsafeSkipCAVerification,omitempty"`
}

type fileDiscovery struct {
	KubeConfigPath string `json:"kubeConfigPath"`
}

// v1beta3

type joinConfigurationV1beta3 struct {
	typeMeta         `json:",inline"`
	NodeRegistration nodeRegistrationV1beta3 `json:"nodeRegistration,omitempty"`
	CACertPath       string                  `json:"caCertPath,omitempty"`
	Discovery        discoveryV1beta3        `json:"discovery"`
	ControlPlane     *joinControlPlane       `json:"controlPlane,omitempty"`
	SkipPhases       []string                `json:"skipPhases,omitempty"`
	Patches          *patches                `json:"patches,omitempty"`
}

type nodeRegistrationV1beta3 struct {
	Name                  string            `json:"name,omitempty"`
	CRISocket             string            `json:"criSocket,omitempty"`
	Taints                taintList         `json:"taints"`
	KubeletExtraArgs      map[string]string `json:"kubeletExtraArgs,omitempty"`
	IgnorePreflightErrors []string          `json:"ignorePreflightErrors,omitempty"`
	ImagePullPolicy       string            `json:"imagePullPolicy,omitempty"`
}

type discoveryV1beta3 struct {
	BootstrapToken    *bootstrapTokenDiscovery `json:"bootstrapToken,omitempty"`
	File              *fileDiscovery           `json:"file,omitempty"`
	TLSBootstrapToken string                   `json:"tlsBootstrapToken,omitempty"`
	Timeout           *string                  `json:"timeout,omitempty"`
}

type patches struct {
	Directory string `json:"directory,omitempty"`
}

// v1beta4: kubeletExtraArgs is a list of name/value pairs, timeouts move from
// discovery.timeout to a top-level timeouts block.

type joinConfigurationV1beta4 struct {
	typeMeta         `json:",inline"`
	DryRun           bool                    `json:"dryRun,omitempty"`
	NodeRegistration nodeRegistrationV1beta4 `json:"nodeRegistration,omitempty"`
	CACertPath       string                  `json:"caCertPath,omitempty"`
	Discovery        discoveryV1beta4        `json:"discovery"`
	ControlPlane     *joinControlPlane       `json:"controlPlane,omitempty"`
	SkipPhases       []string                `json:"skipPhases,omitempty"`
	Patches          *patches                `json:"patches,omitempty"`
	Timeouts         *timeoutsV1beta4        `json:"timeouts,omitempty"`
}

type argV1beta4 struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type nodeRegistrationV1beta4 struct {
	Name                  string       `json:"name,omitempty"`
	CRISocket             string       `json:"criSocket,omitempty"`
	Taints                taintList    `json:"taints"`
	KubeletExtraArgs      []argV1beta4 `json:"kubeletExtraArgs,omitempty"`
	IgnorePreflightErrors []string     `json:"ignorePreflightErrors,omitempty"`
	ImagePullPolicy       string       `json:"imagePullPolicy,omitempty"`
	ImagePullSerial       *bool        `json:"imagePullSerial,omitempty"`
}

type discoveryV1beta4 struct {
	BootstrapToken    *bootstrapTokenDiscovery `json:"bootstrapToken,omitempty"`
	File              *fileDiscovery           `json:"file,omitempty"`
	TLSBootstrapToken string                   `json:"tlsBootstrapToken,omitempty"`
}

type timeoutsV1beta4 struct {
	ControlPlaneComponentHealthCheck *string `json:"controlPlaneComponentHealthCheck,omitempty"`
	KubeletHealthCheck               *string `json:"kubeletHealthCheck,omitempty"`
	KubernetesAPICall                *string `json:"kubernetesAPICall,omitempty"`
	EtcdAPICall                      *string `json:"etcdAPICall,omitempty"`
	TLSBootstrap                     *string `json:"tlsBootstrap,omitempty"`
	Discovery                        *string `json:"discovery,omitempty"`
	UpgradeManifests                 *string `json:"upgradeManifests,omitempty"`
}

// KubeVersion is a parsed Kubernetes version.
type KubeVersion struct {
	Major, Minor, Patch int
	Pre                 string // "-rc.1" etc., empty for releases
}

func (v KubeVersion) String() string {
	return fmt.Sprintf("%d.%d.%d%s", v.Major, v.Minor, v.Patch, v.Pre)
}

// ParseKubernetesVersion parses "1.36.4" or "v1.36.4" (optionally with a
// pre-release suffix such as "-rc.1") and refuses versions older than 1.22,
// the first whose kubeadm reads v1beta3.
func ParseKubernetesVersion(s string) (KubeVersion, error) {
	t := strings.TrimPrefix(s, "v")
	core, pre, _ := strings.Cut(t, "-")
	if pre != "" {
		pre = "-" + pre
	}
	parts := strings.Split(core, ".")
	var v KubeVersion
	bad := len(parts) != 3
	nums := make([]int, 3)
	for i := 0; !bad && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 || (len(parts[i]) > 1 && parts[i][0] == '0') {
			bad = true
			break
		}
		nums[i] = n
	}
	if bad {
		return v, fmt.Errorf("%w: %q is not X.Y.Z", ErrKubernetesVersion, s)
	}
	v = KubeVersion{Major: nums[0], Minor: nums[1], Patch: nums[2], Pre: pre}
	if v.Major != 1 || v.Minor < 22 {
		return v, fmt.Errorf("%w: %s is older than 1.22 (kubeadm v1beta3)", ErrKubernetesVersion, v)
	}
	return v, nil
}

// KubeadmAPIVersion is the JoinConfiguration apiVersion kubeadm of version v
// expects: v1beta3 up to 1.30, v1beta4 from 1.31.
func KubeadmAPIVersion(v KubeVersion) string {
	if v.Major == 1 && v.Minor <= 30 {
		return kubeadmV1beta3
	}
	return kubeadmV1beta4
}

// joinInput is what the JoinConfiguration is built from.
type joinInput struct {
	node     *Node
	cluster  *Cluster
	caHashes []string
	unsafeCA bool
}

// argsMap is kubeletArgs as v1beta3's kubeletExtraArgs map (nil when empty).
func argsMap(args [][2]string) map[string]string {
	if len(args) == 0 {
		return nil
	}
	m := make(map[string]string, len(args))
	for _, a := range args {
		m[a[0]] = a[1]
	}
	return m
}

// kubeletArgs returns the kubelet flags a node needs, sorted by name.
func kubeletArgs(n *Node) [][2]string {
	args := make([][2]string, 0, len(n.KubeletExtraArgs)+2)
	for _, k := range sortedKeys(n.KubeletExtraArgs) {
		args = append(args, [2]string{k, n.KubeletExtraArgs[k]})
	}
	if len(n.Labels) > 0 {
		var b strings.Builder
		for i, k := range sortedKeys(n.Labels) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(n.Labels[k])
		}
		args = append(args, [2]string{"node-labels", b.String()})
	}
	if n.MaxPods > 0 {
		args = append(args, [2]string{"max-pods", strconv.Itoa(n.MaxPods)})
	}
	sort.Slice(args, func(i, j int) bool { return args[i][0] < args[j][0] })
	return args
}

func taints(n *Node) taintList {
	if !n.taintsSet && len(n.Taints) == 0 {
		return nil // kubeadm default: the control-plane taint on control-plane nodes
	}
	out := make(taintList, len(n.Taints))
	for i, t := range n.Taints {
		out[i] = taintV1(t)
	}
	return out
}

func durationText(d time.Duration) *string {
	if d == 0 {
		return nil
	}
	s := d.String() // metav1.Duration's text form
	return &s
}

// joinConfiguration marshals the JoinConfiguration for kubeadm apiVersion.
func joinConfiguration(apiVersion string, in joinInput) ([]byte, error) {
	v, err := joinObject(apiVersion, in)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(1024)
	emitYAML(&b, toNode(reflect.ValueOf(v)))
	return b.Bytes(), nil
}

// joinObject builds the typed JoinConfiguration for kubeadm apiVersion.
func joinObject(apiVersion string, in joinInput) (any, error) {
	n, c := in.node, in.cluster
	bt := &bootstrapTokenDiscovery{
		Token:                    c.BootstrapToken,
		APIServerEndpoint:        c.APIServerEndpoint,
		CACertHashes:             in.caHashes,
		UnsafeSkipCAVerification: in.unsafeCA,
	}
	var cp *joinControlPlane
	if n.Role == RoleControlPlane {
		cp = &joinControlPlane{
			LocalAPIEndpoint: apiEndpoint{AdvertiseAddress: n.AdvertiseAddress, BindPort: int32(n.BindPort)},
			CertificateKey:   n.CertificateKey,
		}
	}
	args := kubeletArgs(n)
	var v any
	switch apiVersion {
	case kubeadmV1beta3:
		m := argsMap(args)
		v = &joinConfigurationV1beta3{
			typeMeta: typeMeta{APIVersion: apiVersion, Kind: "JoinConfiguration"},
			NodeRegistration: nodeRegistrationV1beta3{
				Name:             n.Name,
				Taints:           taints(n),
				KubeletExtraArgs: m,
			},
			Discovery:    discoveryV1beta3{BootstrapToken: bt, Timeout: durationText(c.DiscoveryTimeout.Duration)},
			ControlPlane: cp,
			Patches:      patchesConfig(n),
		}
	case kubeadmV1beta4:
		var list []argV1beta4
		for _, a := range args {
			list = append(list, argV1beta4{Name: a[0], Value: a[1]})
		}
		var to *timeoutsV1beta4
		// discoveryTimeout is how long the join waits for the control plane:
		// discovery, then the TLS bootstrap (its CSR approved and signed by
		// the controller manager), which v1beta4 times separately.
		if d := durationText(c.DiscoveryTimeout.Duration); d != nil {
			to = &timeoutsV1beta4{Discovery: d, TLSBootstrap: d}
		}
		v = &joinConfigurationV1beta4{
			typeMeta: typeMeta{APIVersion: apiVersion, Kind: "JoinConfiguration"},
			NodeRegistration: nodeRegistrationV1beta4{
				Name:             n.Name,
				Taints:           taints(n),
				KubeletExtraArgs: list,
			},
			Discovery:    discoveryV1beta4{BootstrapToken: bt},
			ControlPlane: cp,
			Patches:      patchesConfig(n),
			Timeouts:     to,
		}
	default:
		return nil, fmt.Errorf("%w: kubeadm API %s", ErrKubernetesVersion, apiVersion)
	}
	return v, nil
}
