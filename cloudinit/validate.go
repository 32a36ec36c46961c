package cloudinit

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prebake/prebake/internal/lazyre"
)

var (
	tokenRE      = lazyre.New(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	hashRE       = lazyre.New(`^sha256:[0-9a-f]{64}$`)
	certKeyRE    = lazyre.New(`^[0-9a-f]{64}$`)
	dnsLabelRE   = lazyre.New(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	labelNameRE  = lazyre.New(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	flagNameRE   = lazyre.New(`^[a-z0-9][a-z0-9-]*$`)
	modeRE       = lazyre.New(`^0?[0-7]{3}$`)
	ownerRE      = lazyre.New(`^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$`)
	noProxyRE    = lazyre.New(`^[A-Za-z0-9.*:/\[\]_-]+$`)
	sshKeyTypeRE = lazyre.New(`^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$`)
)

// kubeletLabels are the kubernetes.io labels a kubelet may set on itself
// (--node-labels); other labels in the kubernetes.io and k8s.io namespaces are
// refused by the kubelet unless under kubelet.kubernetes.io or
// node.kubernetes.io.
var kubeletLabels = map[string]bool{
	"kubernetes.io/hostname":                   true,
	"kubernetes.io/os":                         true,
	"kubernetes.io/arch":                       true,
	"beta.kubernetes.io/os":                    true,
	"beta.kubernetes.io/arch":                  true,
	"beta.kubernetes.io/instance-type":         true,
	"node.kubernetes.io/instance-type":         true,
	"topology.kubernetes.io/zone":              true,
	"topology.kubernetes.io/region":            true,
	"failure-domain.beta.kubernetes.io/zone":   true,
	"failure-domain.beta.kubernetes.io/region": true,
}

// Fixed paths of the rendered document.
const (
	// RunDir holds everything prebake writes for the join under cloud-init.
	RunDir = "/run/prebake"
	// JoinConfigPath is the kubeadm JoinConfiguration; an image's join unit
	// (a systemd .path unit) watches for it.
	JoinConfigPath = RunDir + "/kubeadm-join.yaml"
	// SentinelPath is Cluster API's bootstrap success marker.
	SentinelPath = "/run/cluster-api/bootstrap-success.complete"
	// reservedPKI may not receive extra files: kubeadm owns it.
	reservedPKI = "/etc/kubernetes/pki"
)

// validate checks every field of nc, adding all problems to ps. It does no
// file I/O: CACertFile must already be loaded into Cluster.CACert.
func validate(nc *NodeConfig, ps *problems) (caHashes []string) {
	if nc.APIVersion != "" && nc.APIVersion != APIVersion {
		ps.add("apiVersion", ErrAPIVersion, "got %q, want %q", nc.APIVersion, APIVersion)
	}
	if nc.Kind != "" && nc.Kind != KindNodeConfig {
		ps.add("kind", ErrAPIVersion, "got %q, want %s", nc.Kind, KindNodeConfig)
	}
	caHashes = validateCluster(&nc.Cluster, nc.init, ps)
	validateNode(&nc.Node, nc.init, ps)
	validatePatches(&nc.Node, nc.init, ps)
	validateJoinMode(nc, ps)
	switch {
	case nc.init:
		validateInit(nc, ps)
	case nc.Cluster.CAKeyFile != "" || len(nc.Cluster.CAKey) > 0:
		ps.add("cluster.caKeyFile", ErrPrivateKey, "only the first control plane (render --init) receives the CA key; a join pins the CA with caCertFile or caCertHashes")
	}
	if !nc.init && nc.Cluster.InitTimeout.Duration != 0 {
		ps.add("cluster.initTimeout", ErrInvalidValue, "only the first control plane (render --init) runs kubeadm init")
	}
	if p := nc.Proxy; p != nil {
		if p.HTTP == "" && p.HTTPS == "" {
			ps.add("proxy", ErrRequired, "give http, https or both")
		}
		checkProxyURL("proxy.http", p.HTTP, ps)
		checkProxyURL("proxy.https", p.HTTPS, ps)
		for i, np := range p.NoProxy {
			if !noProxyRE.MatchString(np) {
				ps.add(fmt.Sprintf("proxy.noProxy[%d]", i), ErrInvalidValue, "%q: want a host, domain, IP or CIDR", np)
			}
		}
	}
	if n := nc.NTP; n != nil {
		if len(n.Servers) == 0 && len(n.Pools) == 0 {
			ps.add("ntp", ErrRequired, "give servers, pools or both")
		}
		for i, s := range n.Servers {
			checkHost(fmt.Sprintf("ntp.servers[%d]", i), s, ps)
		}
		for i, s := range n.Pools {
			checkHost(fmt.Sprintf("ntp.pools[%d]", i), s, ps)
		}
	}
	for i, k := range nc.SSHAuthorizedKeys {
		if err := checkSSHKey(k); err != "" {
			ps.add(fmt.Sprintf("sshAuthorizedKeys[%d]", i), ErrInvalidValue, "%s", err)
		}
	}
	seen := map[string]int{}
	for i := range nc.Files {
		validateFile(&nc.Files[i], fmt.Sprintf("files[%d]", i), seen, i, ps)
	}
	if nc.Image != "" {
		ref, dig, ok := strings.Cut(nc.Image, "@")
		if !ok || ref == "" || !hashRE.MatchString(dig) {
			ps.add("image", ErrInvalidValue, "%q: want REF@sha256:<64 hex>", nc.Image)
		}
	}
	return caHashes
}

func validateCluster(c *Cluster, init bool, ps *problems) []string {
	if c.Name != "" && (!dnsLabelRE.MatchString(c.Name) || len(c.Name) > 63) {
		ps.add("cluster.name", ErrInvalidValue, "%q: want a DNS label (lowercase letters, digits, '-')", c.Name)
	}
	switch {
	case c.APIServerEndpoint == "":
		ps.add("cluster.apiServerEndpoint", ErrMissingEndpoint, "required: host:port of the API server")
	default:
		if msg := checkHostPort(c.APIServerEndpoint); msg != "" {
			ps.add("cluster.apiServerEndpoint", ErrMissingEndpoint, "%q: %s", c.APIServerEndpoint, msg)
		}
	}
	switch {
	case c.BootstrapToken == "" && c.BootstrapTokenFile == "" && init:
		// kubeadm init creates a token of its own.
	case c.BootstrapToken == "" && c.BootstrapTokenFile == "":
		ps.add("cluster.bootstrapToken", ErrRequired, "give bootstrapToken or bootstrapTokenFile")
	case c.BootstrapToken != "" && c.BootstrapTokenFile != "" && c.tokenFromFile == "":
		ps.add("cluster.bootstrapTokenFile", ErrInvalidValue, "give bootstrapToken or bootstrapTokenFile, not both")
	case c.BootstrapToken == "":
		if ps.has("cluster.bootstrapTokenFile") {
			break
		}
		ps.add("cluster.bootstrapTokenFile", ErrTokenFile, "not loaded (use Load, or set BootstrapToken)")
	case !tokenRE.MatchString(c.BootstrapToken):
		field := "cluster.bootstrapToken"
		if c.tokenFromFile != "" {
			field = "cluster.bootstrapTokenFile"
		}
		// The value is a secret: never echo it.
		ps.add(field, ErrMalformedToken, "want 6 and 16 lowercase letters or digits joined by '.', as `kubeadm token create` prints")
	}
	for i, h := range c.CACertHashes {
		if !hashRE.MatchString(h) {
			ps.add(fmt.Sprintf("cluster.caCertHashes[%d]", i), ErrMalformedHash, "%q: want sha256:<64 lowercase hex>", h)
		}
	}
	var computed []string
	if c.CACertFile != "" || len(c.CACert) > 0 {
		if len(c.CACert) == 0 {
			if ps.has("cluster.caCertFile") {
				return nil
			}
			ps.add("cluster.caCertFile", ErrCAFile, "not loaded (use Load, or set CACert)")
		} else {
			hashes, detail, err := caCertHashesCached(c.CACert)
			if err != nil {
				ps.add("cluster.caCertFile", err, "%s", detail)
			}
			computed = hashes
		}
	}
	if len(computed) > 0 && len(c.CACertHashes) > 0 {
		for _, h := range computed {
			if !contains(c.CACertHashes, h) {
				ps.add("cluster.caCertHashes", ErrCAHashMismatch, "%s computed from caCertFile is not listed", h)
			}
		}
	}
	pinned := len(computed) > 0 || len(c.CACertHashes) > 0
	switch {
	case !pinned && !c.UnsafeSkipCAVerification && c.CACertFile == "" && len(c.CACert) == 0 && !init:
		ps.add("cluster.caCertFile", ErrNoCAPinning, "give caCertFile or caCertHashes so the node can verify the cluster it joins")
	case pinned && c.UnsafeSkipCAVerification:
		ps.add("cluster.unsafeSkipCAVerification", ErrInvalidValue, "contradicts the CA pins given")
	}
	hashes := append([]string(nil), computed...)
	for _, h := range c.CACertHashes {
		if !contains(hashes, h) {
			hashes = append(hashes, h)
		}
	}
	return hashes
}

// CACertHash returns kubeadm's pin for a certificate: "sha256:" and the hex
// SHA-256 of its DER SubjectPublicKeyInfo.
func CACertHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// caCache memoizes caCertHashes: a fleet shares one CA, and parsing the
// certificate again for every node would dominate rendering.
var caCache = struct {
	sync.Mutex
	m map[string]caResult
}{m: map[string]caResult{}}

type caResult struct {
	hashes []string
	detail string
	err    error
}

const caCacheMax = 64

func caCertHashesCached(pemData []byte) ([]string, string, error) {
	caCache.Lock()
	r, ok := caCache.m[string(pemData)]
	caCache.Unlock()
	if ok {
		return r.hashes, r.detail, r.err
	}
	r.hashes, r.detail, r.err = caCertHashes(pemData)
	caCache.Lock()
	if len(caCache.m) >= caCacheMax {
		clear(caCache.m)
	}
	caCache.m[string(pemData)] = r
	caCache.Unlock()
	return r.hashes, r.detail, r.err
}

// caCertHashes parses PEM and pins every certificate in it.
func caCertHashes(pemData []byte) ([]string, string, error) {
	var out []string
	rest := pemData
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.Contains(b.Type, "PRIVATE KEY") {
			return nil, "the CA file holds a private key; give only the certificate (prebake never puts CA private keys into user-data)", ErrPrivateKey
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Sprintf("parsing certificate: %v", err), ErrCAFile
		}
		if !cert.IsCA {
			return nil, fmt.Sprintf("certificate %q is not a CA (basicConstraints CA:FALSE)", cert.Subject.CommonName), ErrCAFile
		}
		out = append(out, CACertHash(cert))
	}
	if len(out) == 0 {
		return nil, "no PEM CERTIFICATE block found", ErrCAFile
	}
	return out, "", nil
}

func validateNode(n *Node, init bool, ps *problems) {
	switch {
	case n.Name == "":
		ps.add("node.name", ErrRequired, "the Kubernetes node name")
	case !isDNSSubdomain(n.Name):
		ps.add("node.name", ErrInvalidValue, "%q: want a DNS-1123 subdomain (lowercase letters, digits, '-', '.')", n.Name)
	}
	if n.Hostname != "" && !isDNSSubdomain(n.Hostname) {
		ps.add("node.hostname", ErrInvalidValue, "%q: want a DNS-1123 subdomain", n.Hostname)
	}
	role := n.Role
	if role == "" {
		role = RoleWorker
		if init {
			role = RoleControlPlane
		}
	}
	switch role {
	case RoleWorker:
		if n.CertificateKey != "" {
			ps.add("node.certificateKey", ErrCertificateKey, "only a control-plane join uses a certificate key")
		}
		if n.AdvertiseAddress != "" {
			ps.add("node.advertiseAddress", ErrInvalidValue, "only a control-plane join advertises an API server address")
		}
		if n.BindPort != 0 {
			ps.add("node.bindPort", ErrInvalidValue, "only a control-plane join binds an API server port")
		}
	case RoleControlPlane:
		switch {
		case n.CertificateKey == "" && init:
			// Optional: with it, kubeadm init uploads the certificates.
		case n.CertificateKey == "":
			ps.add("node.certificateKey", ErrCertificateKey, "required for a control-plane join (from `kubeadm init phase upload-certs --upload-certs`)")
		case !certKeyRE.MatchString(n.CertificateKey):
			ps.add("node.certificateKey", ErrCertificateKey, "want 64 lowercase hex digits")
		}
		if n.AdvertiseAddress != "" {
			if _, err := netip.ParseAddr(n.AdvertiseAddress); err != nil {
				ps.add("node.advertiseAddress", ErrInvalidValue, "%q: want an IP address", n.AdvertiseAddress)
			}
		}
		if n.BindPort < 0 || n.BindPort > 65535 {
			ps.add("node.bindPort", ErrInvalidValue, "%d: want 1-65535", n.BindPort)
		}
	default:
		ps.add("node.role", ErrUnknownRole, "%q: want %s or %s", n.Role, RoleWorker, RoleControlPlane)
	}
	for _, k := range sortedKeys(n.Labels) {
		f := "node.labels." + k
		if msg := checkQualifiedName(k); msg != "" {
			ps.add(f, ErrInvalidValue, "key %q: %s", k, msg)
		} else if msg := checkKubeletLabel(k); msg != "" {
			ps.add(f, ErrInvalidValue, "key %q: %s", k, msg)
		}
		if msg := checkLabelValue(n.Labels[k]); msg != "" {
			ps.add(f, ErrInvalidValue, "value %q: %s", n.Labels[k], msg)
		}
	}
	seenTaint := map[string]bool{}
	for i, t := range n.Taints {
		f := fmt.Sprintf("node.taints[%d]", i)
		if t.Key == "" {
			ps.add(f+".key", ErrRequired, "")
		} else if msg := checkQualifiedName(t.Key); msg != "" {
			ps.add(f+".key", ErrInvalidValue, "%q: %s", t.Key, msg)
		}
		if msg := checkLabelValue(t.Value); msg != "" {
			ps.add(f+".value", ErrInvalidValue, "%q: %s", t.Value, msg)
		}
		switch t.Effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute":
		case "":
			ps.add(f+".effect", ErrRequired, "NoSchedule, PreferNoSchedule or NoExecute")
		default:
			ps.add(f+".effect", ErrInvalidValue, "%q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
		}
		if seenTaint[t.Key+":"+t.Effect] {
			ps.add(f, ErrInvalidValue, "taint %s:%s given twice", t.Key, t.Effect)
		}
		seenTaint[t.Key+":"+t.Effect] = true
	}
	for _, k := range sortedKeys(n.KubeletExtraArgs) {
		f := "node.kubeletExtraArgs." + k
		if !flagNameRE.MatchString(k) {
			ps.add(f, ErrInvalidValue, "%q: want a kubelet flag name without leading dashes", k)
		}
		if v := n.KubeletExtraArgs[k]; strings.ContainsAny(v, "\n\r\x00") || !utf8.ValidString(v) {
			ps.add(f, ErrInvalidValue, "value must be one line")
		}
		if k == "node-labels" && len(n.Labels) > 0 {
			ps.add(f, ErrInvalidValue, "conflicts with node.labels; use node.labels only")
		}
		if k == "max-pods" && n.MaxPods != 0 {
			ps.add(f, ErrInvalidValue, "conflicts with node.maxPods; use node.maxPods only")
		}
	}
	if n.MaxPods < 0 || n.MaxPods > 10000 {
		ps.add("node.maxPods", ErrInvalidValue, "%d: want 1-10000", n.MaxPods)
	}
}

func validateFile(f *File, field string, seen map[string]int, i int, ps *problems) {
	switch {
	case f.Path == "":
		ps.add(field+".path", ErrRequired, "")
	case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || strings.ContainsAny(f.Path, "\n\r\x00"):
		ps.add(field+".path", ErrInvalidValue, "%q: want a clean absolute path", f.Path)
	case f.Path == reservedPKI || strings.HasPrefix(f.Path, reservedPKI+"/"):
		if hasPrivateKey(f.Content) {
			ps.add(field+".content", ErrPrivateKey, "prebake never puts CA or cluster private keys into user-data; a control-plane join fetches them with certificateKey")
		} else {
			ps.add(field+".path", ErrInvalidValue, "%s belongs to kubeadm", reservedPKI)
		}
	case f.Path == RunDir || strings.HasPrefix(f.Path, RunDir+"/") || f.Path == SentinelPath:
		ps.add(field+".path", ErrInvalidValue, "%s is reserved for prebake's own files", f.Path)
	default:
		if j, dup := seen[f.Path]; dup {
			ps.add(field+".path", ErrInvalidValue, "%s is also files[%d]", f.Path, j)
		}
		seen[f.Path] = i
	}
	if !utf8.ValidString(f.Content) || !utf8.ValidString(f.Path) {
		ps.add(field+".content", ErrInvalidValue, "files must be UTF-8 text")
	}
	if f.Content != "" && f.ContentFile != "" && !f.loaded {
		ps.add(field+".contentFile", ErrInvalidValue, "give content or contentFile, not both")
	}
	if f.Permissions != "" {
		if !modeRE.MatchString(f.Permissions) {
			ps.add(field+".permissions", ErrInvalidValue, "%q: want an octal mode such as \"0644\"", f.Permissions)
		} else if f.Secret && fileMode(f) != "0600" {
			ps.add(field+".permissions", ErrInvalidValue, "%q: a secret file is always \"0600\"", f.Permissions)
		}
	}
	if f.Owner != "" && !ownerRE.MatchString(f.Owner) {
		ps.add(field+".owner", ErrInvalidValue, "%q: want user:group", f.Owner)
	}
}

// fileMode is f's mode as four octal digits: 0600 for a secret, and by
// default for content holding a private key; otherwise the spec's
// permissions, default 0644.
func fileMode(f *File) string {
	switch {
	case f.Secret:
		return "0600"
	case f.Permissions == "" && hasPrivateKey(f.Content):
		return "0600"
	case f.Permissions == "":
		return "0644"
	case len(f.Permissions) == 3:
		return "0" + f.Permissions
	}
	return f.Permissions
}

func hasPrivateKey(s string) bool {
	return strings.Contains(s, "PRIVATE KEY-----")
}

func checkProxyURL(field, s string, ps *problems) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		ps.add(field, ErrInvalidValue, "want an http:// or https:// URL with a host")
	case strings.ContainsAny(s, "\"\\ \t\n\r\x00'"):
		ps.add(field, ErrInvalidValue, "must not contain quotes, backslashes or whitespace")
	}
}

func checkHost(field, s string, ps *problems) {
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	if !isDNSSubdomain(strings.ToLower(s)) {
		ps.add(field, ErrInvalidValue, "%q: want a host name or IP address", s)
	}
}

func checkHostPort(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "want host:port"
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "port must be 1-65535"
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if !isDNSSubdomain(strings.ToLower(host)) {
		return "host must be an IP address or DNS name"
	}
	return ""
}

func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > 63 || !dnsLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

// checkQualifiedName validates a label or taint key as Kubernetes does:
// an optional DNS subdomain prefix and '/', then a name of at most 63
// characters.
func checkQualifiedName(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	} else if prefix == "" || !isDNSSubdomain(prefix) {
		return "prefix must be a DNS subdomain"
	}
	if name == "" || len(name) > 63 || !labelNameRE.MatchString(name) {
		return "name must be 1-63 characters: letters, digits, '-', '_', '.', starting and ending alphanumeric"
	}
	return ""
}

func checkLabelValue(v string) string {
	if v == "" {
		return ""
	}
	if len(v) > 63 || !labelNameRE.MatchString(v) {
		return "want at most 63 characters: letters, digits, '-', '_', '.', starting and ending alphanumeric"
	}
	return ""
}

// checkKubeletLabel refuses what the kubelet refuses in --node-labels.
func checkKubeletLabel(k string) string {
	prefix, _, ok := strings.Cut(k, "/")
	if !ok {
		return ""
	}
	restricted := prefix == "kubernetes.io" || prefix == "k8s.io" ||
		strings.HasSuffix(prefix, ".kubernetes.io") || strings.HasSuffix(prefix, ".k8s.io")
	if !restricted || kubeletLabels[k] {
		return ""
	}
	for _, ns := range []string{"kubelet.kubernetes.io", "node.kubernetes.io"} {
		if prefix == ns || strings.HasSuffix(prefix, "."+ns) {
			return ""
		}
	}
	return "the kubelet may not set labels in the kubernetes.io or k8s.io namespaces (node-role labels are applied by a controller or kubectl, not at join)"
}

func checkSSHKey(k string) string {
	if strings.ContainsAny(k, "\n\r\x00") || !utf8.ValidString(k) {
		return "one key per entry, on one line, in UTF-8"
	}
	fields := strings.Fields(k)
	if len(fields) < 2 {
		return "want \"TYPE BASE64 [comment]\" as in authorized_keys"
	}
	if !sshKeyTypeRE.MatchString(fields[0]) {
		return fmt.Sprintf("unknown key type %q", fields[0])
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil || len(blob) < 4 {
		return "key data is not base64"
	}
	n := int(blob[0])<<24 | int(blob[1])<<16 | int(blob[2])<<8 | int(blob[3])
	if n > len(blob)-4 || string(blob[4:4+n]) != fields[0] {
		return fmt.Sprintf("key data does not hold a %s key", fields[0])
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// validateJoinMode checks node.joinMode and what the kubelet mode needs.
func validateJoinMode(nc *NodeConfig, ps *problems) {
	c := &nc.Cluster
	for i, ip := range c.ClusterDNS {
		if _, err := netip.ParseAddr(ip); err != nil {
			ps.add(fmt.Sprintf("cluster.clusterDNS[%d]", i), ErrInvalidValue, "%q: want an IP address", ip)
		}
	}
	if c.ClusterDomain != "" && !isDNSSubdomain(c.ClusterDomain) {
		ps.add("cluster.clusterDomain", ErrInvalidValue, "%q: want a DNS subdomain", c.ClusterDomain)
	}
	switch nc.Node.JoinMode {
	case "", JoinModeKubeadm:
	case JoinModeKubelet:
		if r := nc.Node.Role; r != "" && r != RoleWorker {
			ps.add("node.joinMode", ErrInvalidValue, "the kubelet join mode joins workers only (a control plane needs kubeadm)")
		}
		if len(c.CACert) == 0 && !ps.has("cluster.caCertFile") {
			ps.add("cluster.caCertFile", ErrRequired, "the kubelet join mode needs the CA certificate itself: the kubelet trusts it directly, without kubeadm's discovery")
		}
	default:
		ps.add("node.joinMode", ErrInvalidValue, "%q: want %s or %s", nc.Node.JoinMode, JoinModeKubeadm, JoinModeKubelet)
	}
}
