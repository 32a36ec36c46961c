package cloudinit

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
)

// The first control plane (prebake render --init): kubeadm's
// InitConfiguration and ClusterConfiguration, marshalled from these types
// like the JoinConfiguration (kubeadm.go), in one YAML stream.

// Paths the init writes.
const (
	// InitConfigPath is the kubeadm InitConfiguration + ClusterConfiguration;
	// an image's init unit (annotation dev.prebake.init-unit) watches for it.
	InitConfigPath = RunDir + "/kubeadm-init.yaml"
	// InitEnvPath holds KUBEADM_INIT_FLAGS for the init unit
	// (--upload-certs when a certificate key is given).
	InitEnvPath    = RunDir + "/kubeadm-init.env"
	initScriptPath = RunDir + "/init.sh"
	caCertPath     = reservedPKI + "/ca.crt"
	caKeyPath      = reservedPKI + "/ca.key"
)

type bootstrapTokenV1 struct {
	Token       string   `json:"token"`
	Description string   `json:"description,omitempty"`
	Usages      []string `json:"usages,omitempty"`
	Groups      []string `json:"groups,omitempty"`
}

type networking struct {
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
	PodSubnet     string `json:"podSubnet,omitempty"`
	DNSDomain     string `json:"dnsDomain,omitempty"`
}

type initConfigurationV1beta3 struct {
	typeMeta         `json:",inline"`
	BootstrapTokens  []bootstrapTokenV1      `json:"bootstrapTokens,omitempty"`
	NodeRegistration nodeRegistrationV1beta3 `json:"nodeRegistration,omitempty"`
	LocalAPIEndpoint apiEndpoint             `json:"localAPIEndpoint,omitempty"`
	CertificateKey   string                  `json:"certificateKey,omitempty"`
	Patches          *patches                `json:"patches,omitempty"`
}

type initConfigurationV1beta4 struct {
	typeMeta         `json:",inline"`
	BootstrapTokens  []bootstrapTokenV1      `json:"bootstrapTokens,omitempty"`
	NodeRegistration nodeRegistrationV1beta4 `json:"nodeRegistration,omitempty"`
	LocalAPIEndpoint apiEndpoint             `json:"localAPIEndpoint,omitempty"`
	CertificateKey   string                  `json:"certificateKey,omitempty"`
	Patches          *patches                `json:"patches,omitempty"`
	Timeouts         *timeoutsV1beta4        `json:"timeouts,omitempty"`
}

// apiServerV1beta3 carries v1beta3's control-plane wait (v1beta4 moved it
// to InitConfiguration.timeouts).
type apiServerV1beta3 struct {
	TimeoutForControlPlane *string `json:"timeoutForControlPlane,omitempty"`
}

// clusterConfiguration has the same shape in v1beta3 and v1beta4 for the
// fields prebake sets.
type clusterConfiguration struct {
	typeMeta             `json:",inline"`
	ClusterName          string            `json:"clusterName,omitempty"`
	KubernetesVersion    string            `json:"kubernetesVersion"`
	ControlPlaneEndpoint string            `json:"controlPlaneEndpoint,omitempty"`
	ImageRepository      string            `json:"imageRepository,omitempty"`
	Networking           networking        `json:"networking,omitempty"`
	APIServer            *apiServerV1beta3 `json:"apiServer,omitempty"`
}

// initConfiguration marshals the InitConfiguration and the
// ClusterConfiguration for kubeadm apiVersion as one YAML stream.
func initConfiguration(apiVersion string, kv KubeVersion, nc *NodeConfig) ([]byte, error) {
	n, c := &nc.Node, &nc.Cluster
	var tokens []bootstrapTokenV1
	if c.BootstrapToken != "" {
		tokens = []bootstrapTokenV1{{
			Token:       c.BootstrapToken,
			Description: "rendered by prebake",
			Usages:      []string{"signing", "authentication"},
			Groups:      []string{"system:bootstrappers:kubeadm:default-node-token"},
		}}
	}
	ep := apiEndpoint{AdvertiseAddress: n.AdvertiseAddress, BindPort: int32(n.BindPort)}
	args := kubeletArgs(n)
	var ic any
	switch apiVersion {
	case kubeadmV1beta3:
		m := argsMap(args)
		ic = &initConfigurationV1beta3{
			typeMeta:         typeMeta{APIVersion: apiVersion, Kind: "InitConfiguration"},
			BootstrapTokens:  tokens,
			NodeRegistration: nodeRegistrationV1beta3{Name: n.Name, Taints: taints(n), KubeletExtraArgs: m},
			LocalAPIEndpoint: ep,
			CertificateKey:   n.CertificateKey,
			Patches:          patchesConfig(n),
		}
	case kubeadmV1beta4:
		var list []argV1beta4
		for _, a := range args {
			list = append(list, argV1beta4{Name: a[0], Value: a[1]})
		}
		var to *timeoutsV1beta4
		if d := durationText(c.InitTimeout.Duration); d != nil {
			to = &timeoutsV1beta4{ControlPlaneComponentHealthCheck: d, KubeletHealthCheck: d, KubernetesAPICall: d}
		}
		ic = &initConfigurationV1beta4{
			typeMeta:         typeMeta{APIVersion: apiVersion, Kind: "InitConfiguration"},
			BootstrapTokens:  tokens,
			NodeRegistration: nodeRegistrationV1beta4{Name: n.Name, Taints: taints(n), KubeletExtraArgs: list},
			LocalAPIEndpoint: ep,
			CertificateKey:   n.CertificateKey,
			Patches:          patchesConfig(n),
			Timeouts:         to,
		}
	default:
		return nil, fmt.Errorf("%w: kubeadm API %s", ErrKubernetesVersion, apiVersion)
	}
	cc := &clusterConfiguration{
		typeMeta:             typeMeta{APIVersion: apiVersion, Kind: "ClusterConfiguration"},
		ClusterName:          c.Name,
		KubernetesVersion:    "v" + kv.String(),
		ControlPlaneEndpoint: c.APIServerEndpoint,
		ImageRepository:      c.ImageRepository,
		Networking:           networking{ServiceSubnet: c.ServiceSubnet, PodSubnet: c.PodSubnet, DNSDomain: c.ClusterDomain},
	}
	if d := durationText(c.InitTimeout.Duration); d != nil && apiVersion == kubeadmV1beta3 {
		cc.APIServer = &apiServerV1beta3{TimeoutForControlPlane: d}
	}
	var b bytes.Buffer
	b.Grow(2048)
	emitYAML(&b, toNode(reflect.ValueOf(ic)))
	b.WriteString("---\n")
	emitYAML(&b, toNode(reflect.ValueOf(cc)))
	return b.Bytes(), nil
}

// initScript runs kubeadm init and writes Cluster API's sentinel on success.
func initScript(proxy, uploadCerts bool) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# kubeadm init, rendered by prebake\nset -eu\n")
	b.WriteString("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin\nexport PATH\n")
	if proxy {
		b.WriteString("systemctl daemon-reload\nsystemctl restart containerd\n")
	}
	flags := ""
	if uploadCerts {
		flags = " --upload-certs"
	}
	fmt.Fprintf(&b, "kubeadm init --config %s%s\n", InitConfigPath, flags)
	fmt.Fprintf(&b, "mkdir -p %s\necho success > %s\n", SentinelPath[:strings.LastIndexByte(SentinelPath, '/')], SentinelPath)
	return []byte(b.String())
}

// validateInit checks what only the first control plane has: the spec must
// describe a control plane, a CA key must match its certificate, and no
// join-only setting applies. It also relaxes nothing by itself: validate
// skips the join's token and CA pinning requirements for init specs.
func validateInit(nc *NodeConfig, ps *problems) {
	c, n := &nc.Cluster, &nc.Node
	if n.Role != "" && n.Role != RoleControlPlane {
		ps.add("node.role", ErrInvalidValue, "%q: --init renders the first control plane (role %s)", n.Role, RoleControlPlane)
	}
	if n.JoinMode != "" && n.JoinMode != JoinModeKubeadm {
		ps.add("node.joinMode", ErrInvalidValue, "the first control plane runs kubeadm init")
	}
	if c.UnsafeSkipCAVerification {
		ps.add("cluster.unsafeSkipCAVerification", ErrInvalidValue, "the first control plane creates or is given the CA; there is nothing to verify")
	}
	if c.DiscoveryTimeout.Duration != 0 {
		ps.add("cluster.discoveryTimeout", ErrInvalidValue, "only a join discovers the cluster")
	}
	if c.PodSubnet != "" {
		if _, err := netip.ParsePrefix(c.PodSubnet); err != nil {
			ps.add("cluster.podSubnet", ErrInvalidValue, "%q: want a CIDR", c.PodSubnet)
		}
	}
	if c.ServiceSubnet != "" {
		if _, err := netip.ParsePrefix(c.ServiceSubnet); err != nil {
			ps.add("cluster.serviceSubnet", ErrInvalidValue, "%q: want a CIDR", c.ServiceSubnet)
		}
	}
	if c.ImageRepository != "" && (strings.ContainsAny(c.ImageRepository, " \t\r\n\"'\\@") || strings.Contains(c.ImageRepository, "://")) {
		ps.add("cluster.imageRepository", ErrInvalidValue, "%q: want a registry/prefix such as registry.example.com/k8s", c.ImageRepository)
	}
	if c.CAKeyFile == "" && len(c.CAKey) == 0 {
		return
	}
	switch {
	case len(c.CAKey) == 0:
		if !ps.has("cluster.caKeyFile") {
			ps.add("cluster.caKeyFile", ErrCAKey, "not loaded (use Load, or set CAKey)")
		}
	case len(c.CACert) == 0:
		ps.add("cluster.caKeyFile", ErrRequired, "a CA key goes with its certificate: give caCertFile too")
	default:
		if msg := checkCAKeyPair(c.CACert, c.CAKey); msg != "" {
			ps.add("cluster.caKeyFile", ErrCAKey, "%s", msg)
		}
	}
}

// checkCAKeyPair reports why key is not the private key of the (first)
// certificate in certPEM, or "" when it is. The key is never echoed.
func checkCAKeyPair(certPEM, keyPEM []byte) string {
	cb, rest := pem.Decode(certPEM)
	for cb != nil && cb.Type != "CERTIFICATE" {
		cb, rest = pem.Decode(rest)
	}
	if cb == nil {
		return "caCertFile has no certificate"
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return "caCertFile: " + err.Error()
	}
	kb, rest := pem.Decode(keyPEM)
	if kb == nil || !strings.Contains(kb.Type, "PRIVATE KEY") {
		return "no PEM PRIVATE KEY block found"
	}
	if b, _ := pem.Decode(rest); b != nil {
		return "want exactly one PEM block, the CA's private key"
	}
	var key any
	switch kb.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return "parsing the private key failed"
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return "unsupported private key type"
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return "the private key does not belong to the CA certificate in caCertFile"
	}
	return ""
}
