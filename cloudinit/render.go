package cloudinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/prebake/prebake/agent"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Format is an output format.
type Format string

// Output formats.
const (
	// FormatCloudConfig is a #cloud-config document (the default).
	FormatCloudConfig Format = "cloud-config"
	// FormatMIME is a MIME multipart document: a text/cloud-config part and,
	// unless the image has a join unit, a text/x-shellscript part that joins.
	FormatMIME Format = "mime"
	// FormatIgnition is an Ignition spec 3.3.0 config (Flatcar).
	FormatIgnition Format = "ignition"
)

// Formats lists the output formats.
var Formats = []Format{FormatCloudConfig, FormatMIME, FormatIgnition}

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w %q: want cloud-config, mime or ignition", ErrFormat, s)
}

// Options control Render. The zero value renders cloud-config, uncompressed,
// without a size limit, joining through runcmd; KubernetesVersion is required.
type Options struct {
	// Format of the output; empty means FormatCloudConfig.
	Format Format
	// KubernetesVersion of the image ("1.36.4"); it picks the kubeadm API
	// version (v1beta3 up to 1.30, v1beta4 from 1.31). Required.
	KubernetesVersion string
	// JoinUnit is the image's join unit (the value of the image annotation
	// dev.prebake.join-unit, e.g. "prebake-join.path"). When set, the
	// cloud-init formats only write files: the unit starts kubeadm join as
	// soon as JoinConfigPath appears. When empty, a script run by runcmd
	// joins. Ignition always uses its own oneshot unit.
	JoinUnit string
	// Gzip compresses the output deterministically (no name, mtime 0).
	Gzip bool
	// MaxSize fails the render when the output is over the limit; the zero
	// value means no limit.
	MaxSize SizeLimit
	// AllowUnsafeSkipCAVerification permits cluster.unsafeSkipCAVerification.
	AllowUnsafeSkipCAVerification bool
	// Agent adds the prebake-agent block to the cloud-init formats (the
	// image bakes prebake-agent: annotation dev.prebake.agent). The
	// document stays valid cloud-init and joins without the agent too;
	// Ignition ignores it. See docs/agent.md.
	Agent bool
	// Init renders the first control plane: kubeadm init with an
	// InitConfiguration and ClusterConfiguration (the spec is read with
	// LoadInit). The cloud-init formats only; never with Agent.
	Init bool
	// InitUnit is the image's init unit (annotation dev.prebake.init-unit,
	// e.g. "prebake-init.path"): with Init, only files are written and the
	// unit runs kubeadm init when InitConfigPath appears. When empty, a
	// script run by runcmd does.
	InitUnit string
}

// Render validates nc and renders its user-data. It is pure: no file system,
// no network, and the same spec and options give the same bytes. Invalid
// specs return a *SpecError listing every problem; oversized output returns a
// *SizeError.
func Render(nc *NodeConfig, opts Options) ([]byte, error) {
	kv, err := ParseKubernetesVersion(opts.KubernetesVersion)
	if err != nil {
		return nil, err
	}
	format := opts.Format
	if format == "" {
		format = FormatCloudConfig
	}
	if _, err := ParseFormat(string(format)); err != nil {
		return nil, err
	}
	if opts.Init {
		if format == FormatIgnition {
			return nil, fmt.Errorf("%w: --init renders cloud-config or mime (an Ignition first control plane is not supported)", ErrFormat)
		}
		c := *nc
		c.init = true
		nc = &c
	}
	ps := &problems{src: nc.source}
	caHashes := validate(nc, ps)
	if nc.Cluster.UnsafeSkipCAVerification && !opts.AllowUnsafeSkipCAVerification {
		ps.add("cluster.unsafeSkipCAVerification", ErrNoCAPinning, "joining without CA pinning lets anyone on the path impersonate the control plane; allow it explicitly (--allow-unsafe-skip-ca-verification) if you must")
	}
	if len(ps.list) > 0 {
		return nil, &SpecError{Problems: ps.list}
	}
	var d *doc
	if nc.init {
		d, err = buildInit(nc, kv, opts.InitUnit)
	} else {
		d, err = build(nc, caHashes, kv, opts.JoinUnit)
	}
	if err != nil {
		return nil, err
	}
	if opts.Agent && format != FormatIgnition && !nc.init {
		if d.agentBlock, err = d.renderAgentBlock(); err != nil {
			return nil, err
		}
	}
	var out []byte
	switch format {
	case FormatCloudConfig:
		out, err = d.cloudConfig(true)
	case FormatMIME:
		out, err = d.mime()
	case FormatIgnition:
		out, err = d.ignition()
	}
	if err != nil {
		return nil, err
	}
	return finish(nc.Node.Name, out, opts)
}

// finish compresses and size-checks a rendered document.
func finish(name string, out []byte, opts Options) ([]byte, error) {
	if opts.Gzip {
		var err error
		if out, err = Gzip(out); err != nil {
			return nil, err
		}
	}
	if err := opts.MaxSize.Check(name, len(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// RenderAll renders every spec with the same options, in parallel, and
// returns the documents in spec order. Problems of all specs come back
// together (a *SpecError when every failure is a spec problem).
func RenderAll(specs []*NodeConfig, opts Options) ([][]byte, error) {
	return RenderEach(specs, opts, nil)
}

// RenderEach is RenderAll that hands each document to fn (when not nil) as
// soon as it is rendered, from the rendering goroutines, instead of keeping
// it: a caller writes while the rest renders, and the fleet's documents
// are never all in memory (the result then holds nil for each document fn
// took). Every spec is rendered whatever fn returns; fn's errors come back
// with the others.
func RenderEach(specs []*NodeConfig, opts Options, fn func(i int, doc []byte) error) ([][]byte, error) {
	out := make([][]byte, len(specs))
	errs := make([]error, len(specs))
	workers := runtime.GOMAXPROCS(0)
	if workers > len(specs) {
		workers = len(specs)
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = Render(specs[i], opts)
				if errs[i] == nil && fn != nil {
					if errs[i] = fn(i, out[i]); errs[i] == nil {
						out[i] = nil
					}
				}
			}
		}()
	}
	for i := range specs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, joinErrors(errs)
}

// joinErrors merges per-spec errors: spec problems into one SpecError (each
// once), anything else joined with errors.Join.
func joinErrors(errs []error) error {
	var (
		all    []Problem
		seen   = map[string]bool{}
		others []error
	)
	for _, err := range errs {
		if err == nil {
			continue
		}
		var se *SpecError
		if errors.As(err, &se) {
			for _, p := range se.Problems {
				if k := p.Error(); !seen[k] {
					seen[k] = true
					all = append(all, p)
				}
			}
			continue
		}
		if k := err.Error(); !seen[k] {
			seen[k] = true
			others = append(others, err)
		}
	}
	if len(others) == 0 && len(all) == 0 {
		return nil
	}
	if len(others) == 0 {
		return &SpecError{Problems: all}
	}
	if len(all) > 0 {
		others = append([]error{&SpecError{Problems: all}}, others...)
	}
	return errors.Join(others...)
}

// Gzip compresses data deterministically: no file name, mtime 0, best
// compression, so the same input always gives the same bytes.
func Gzip(data []byte) ([]byte, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("compressing: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing: %w", err)
	}
	return b.Bytes(), nil
}

// RenderFetch renders user-data that only fetches the real document from
// url (as served by `prebake serve --bootstrap-dir`): an #include for the
// cloud-init formats, config.replace for Ignition. No secret is in it.
func RenderFetch(url string, opts Options) ([]byte, error) {
	if strings.ContainsAny(url, " \t\r\n\"\\") || !(strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://")) {
		return nil, fmt.Errorf("%w: bootstrap URL %q: want an http(s) URL without spaces or quotes", ErrInvalidValue, url)
	}
	format := opts.Format
	if format == "" {
		format = FormatCloudConfig
	}
	var out []byte
	switch format {
	case FormatCloudConfig:
		out = []byte("#include\n" + url + "\n")
	case FormatMIME:
		var err error
		out, err = mimeDocument([]mimePart{{contentType: "text/x-include-url", filename: "bootstrap-url.txt", body: []byte(url + "\n")}})
		if err != nil {
			return nil, err
		}
	case FormatIgnition:
		var err error
		if out, err = ignitionFetch(url); err != nil {
			return nil, err
		}
	default:
		_, err := ParseFormat(string(format))
		return nil, err
	}
	return finish("bootstrap", out, opts)
}

// SizeLimit is a provider's user-data size limit.
type SizeLimit struct {
	Name   string // "aws", "openstack", "gce", or empty for a plain byte count
	Bytes  int    // 0 means no limit
	Base64 bool   // the limit counts the base64-encoded size
}

// Provider size limits for user-data.
var (
	LimitAWS       = SizeLimit{Name: "aws", Bytes: 16384}
	LimitOpenStack = SizeLimit{Name: "openstack", Bytes: 65535, Base64: true}
	LimitGCE       = SizeLimit{Name: "gce", Bytes: 262144}
)

// ParseSizeLimit reads "aws", "openstack", "gce" or a byte count.
func ParseSizeLimit(s string) (SizeLimit, error) {
	switch s {
	case "aws":
		return LimitAWS, nil
	case "openstack":
		return LimitOpenStack, nil
	case "gce":
		return LimitGCE, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return SizeLimit{}, fmt.Errorf("%w: size limit %q: want aws, openstack, gce or a positive byte count", ErrInvalidValue, s)
	}
	return SizeLimit{Bytes: n}, nil
}

// Size is n as the limit counts it.
func (l SizeLimit) Size(n int) int {
	if l.Base64 {
		return base64.StdEncoding.EncodedLen(n)
	}
	return n
}

// Check returns a *SizeError when n bytes of user-data for node are over l.
func (l SizeLimit) Check(node string, n int) error {
	if l.Bytes <= 0 || l.Size(n) <= l.Bytes {
		return nil
	}
	return &SizeError{Node: node, Size: l.Size(n), Limit: l}
}

// doc is the format-neutral content of one node's user-data.
type doc struct {
	name         string
	hostname     string
	header       string // comment naming what was rendered
	joinBy       string // how the cloud-init formats join
	sshKeys      []string
	ntp          *NTP
	files        []outFile // in write order; the join configuration is last
	joinConfig   []byte
	joinScript   []byte // nil when the image's join unit joins
	configPath   string // where joinConfig goes: JoinConfigPath, or InitConfigPath for init
	scriptPath   string // where joinScript goes
	proxyConf    []byte // systemd drop-in for containerd and kubelet; nil without proxy
	kubeVersion  KubeVersion
	joinMode     string    // JoinModeKubeadm or JoinModeKubelet
	kubeletFiles []outFile // the kubelet join mode's files, at their destinations
	agentBlock   []byte    // the prebake-agent block; nil without Options.Agent
}

type outFile struct {
	path    string
	content []byte
	mode    string // four octal digits
	owner   string
}

// Paths of the proxy drop-ins.
const (
	containerdProxyDropIn = "/etc/systemd/system/containerd.service.d/http-proxy.conf"
	kubeletProxyDropIn    = "/etc/systemd/system/kubelet.service.d/http-proxy.conf"
	joinScriptPath        = RunDir + "/join.sh"
)

func build(nc *NodeConfig, caHashes []string, kv KubeVersion, joinUnit string) (*doc, error) {
	api := KubeadmAPIVersion(kv)
	node := nc.Node
	if node.Role == "" {
		node.Role = RoleWorker
	}
	jc, err := joinConfiguration(api, joinInput{
		node:     &node,
		cluster:  &nc.Cluster,
		caHashes: caHashes,
		unsafeCA: nc.Cluster.UnsafeSkipCAVerification,
	})
	if err != nil {
		return nil, err
	}
	d := &doc{
		name:        node.Name,
		hostname:    node.Hostname,
		sshKeys:     nc.SSHAuthorizedKeys,
		ntp:         nc.NTP,
		joinConfig:  jc,
		configPath:  JoinConfigPath,
		scriptPath:  joinScriptPath,
		kubeVersion: kv,
	}
	d.header = fmt.Sprintf("rendered by prebake for %s node %s: Kubernetes %s, %s", node.Role, node.Name, kv, api)
	d.joinBy = "joined by runcmd"
	if joinUnit != "" {
		d.joinBy = "joined by the image's " + joinUnit
	}
	d.addFiles(nc)
	d.joinMode = JoinModeKubeadm
	switch {
	case node.JoinMode == JoinModeKubelet:
		// No kubeadm: a script installs the kubelet's files and starts it,
		// with or without a join unit in the image.
		d.joinMode = JoinModeKubelet
		d.kubeletFiles = kubeletFiles(nc)
		d.joinScript = kubeletJoinScript(node.Name, d.kubeletFiles, nc.Proxy != nil)
		d.joinBy = "joined by the kubelet join script"
	case joinUnit == "":
		d.joinScript = joinScript(nc.Proxy != nil, JoinConfigPath)
	}
	return d, nil
}

// addFiles adds the proxy drop-ins and the spec's extra files.
func (d *doc) addFiles(nc *NodeConfig) {
	if p := nc.Proxy; p != nil {
		d.proxyConf = proxyDropIn(p)
		d.files = append(d.files,
			outFile{path: containerdProxyDropIn, content: d.proxyConf, mode: "0644", owner: "root:root"},
			outFile{path: kubeletProxyDropIn, content: d.proxyConf, mode: "0644", owner: "root:root"})
	}
	for i := range nc.Files {
		f := &nc.Files[i]
		owner := f.Owner
		if owner == "" {
			owner = "root:root"
		}
		d.files = append(d.files, outFile{path: f.Path, content: []byte(f.Content), mode: fileMode(f), owner: owner})
	}
	d.files = append(d.files, patchFiles(&nc.Node)...)
}

// buildInit is build for the first control plane: the CA (when given), the
// init unit's flags, and the kubeadm init configuration, written last.
func buildInit(nc *NodeConfig, kv KubeVersion, initUnit string) (*doc, error) {
	api := KubeadmAPIVersion(kv)
	node := nc.Node
	node.Role = RoleControlPlane
	c := *nc
	c.Node = node
	ic, err := initConfiguration(api, kv, &c)
	if err != nil {
		return nil, err
	}
	d := &doc{
		name:        node.Name,
		hostname:    node.Hostname,
		sshKeys:     nc.SSHAuthorizedKeys,
		ntp:         nc.NTP,
		joinConfig:  ic,
		configPath:  InitConfigPath,
		scriptPath:  initScriptPath,
		kubeVersion: kv,
		joinMode:    JoinModeKubeadm,
	}
	d.header = fmt.Sprintf("rendered by prebake for the first control plane %s: Kubernetes %s, %s", node.Name, kv, api)
	d.addFiles(nc)
	if len(nc.Cluster.CAKey) > 0 {
		d.files = append(d.files,
			outFile{path: caCertPath, content: nc.Cluster.CACert, mode: "0644", owner: "root:root"},
			outFile{path: caKeyPath, content: nc.Cluster.CAKey, mode: "0600", owner: "root:root"})
	}
	upload := node.CertificateKey != ""
	if initUnit != "" {
		d.joinBy = "initialized by the image's " + initUnit
		env := "KUBEADM_INIT_FLAGS=\n"
		if upload {
			env = "KUBEADM_INIT_FLAGS=--upload-certs\n"
		}
		d.files = append(d.files, outFile{path: InitEnvPath, content: []byte("# rendered by prebake\n" + env), mode: "0644", owner: "root:root"})
	} else {
		d.joinBy = "initialized by runcmd"
		d.joinScript = initScript(nc.Proxy != nil, upload)
	}
	return d, nil
}

// proxyDropIn is a systemd drop-in setting the proxy environment. Values were
// validated (no quotes, backslashes or whitespace); '%' is escaped for systemd.
func proxyDropIn(p *Proxy) []byte {
	esc := func(s string) string { return strings.ReplaceAll(s, "%", "%%") }
	var b strings.Builder
	b.WriteString("# rendered by prebake\n[Service]\n")
	if p.HTTP != "" {
		fmt.Fprintf(&b, "Environment=\"HTTP_PROXY=%s\" \"http_proxy=%s\"\n", esc(p.HTTP), esc(p.HTTP))
	}
	if p.HTTPS != "" {
		fmt.Fprintf(&b, "Environment=\"HTTPS_PROXY=%s\" \"https_proxy=%s\"\n", esc(p.HTTPS), esc(p.HTTPS))
	}
	if len(p.NoProxy) > 0 {
		np := esc(strings.Join(p.NoProxy, ","))
		fmt.Fprintf(&b, "Environment=\"NO_PROXY=%s\" \"no_proxy=%s\"\n", np, np)
	}
	return []byte(b.String())
}

// joinScript runs kubeadm join and writes Cluster API's sentinel on success.
func joinScript(proxy bool, configPath string) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# kubeadm join, rendered by prebake\nset -eu\n")
	b.WriteString("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin\nexport PATH\n")
	if proxy {
		b.WriteString("systemctl daemon-reload\nsystemctl restart containerd\n")
	}
	fmt.Fprintf(&b, "kubeadm join --config %s\n", configPath)
	fmt.Fprintf(&b, "mkdir -p %s\necho success > %s\n", SentinelPath[:strings.LastIndexByte(SentinelPath, '/')], SentinelPath)
	return []byte(b.String())
}

// yaml node helpers: the cloud-config is built as a node tree so key order
// and quoting are explicit.

func ystr(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func yquoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
}

func ybool(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func yblock(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.LiteralStyle}
}

func yseq(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
}

func yflow(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items, Style: yaml.FlowStyle}
}

func ymap(kv ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: kv}
}

func ystrs(list []string) *yaml.Node {
	n := yseq()
	for _, s := range list {
		n.Content = append(n.Content, ystr(s))
	}
	return n
}

// cloudConfig renders the #cloud-config document. withJoin adds the join
// script and its runcmd (the MIME format carries the script as its own part).
func (d *doc) cloudConfig(withJoin bool) ([]byte, error) {
	root := ymap()
	add := func(k string, v *yaml.Node) { root.Content = append(root.Content, ystr(k), v) }
	if d.hostname != "" {
		add("hostname", ystr(d.hostname))
	}
	if len(d.sshKeys) > 0 {
		add("ssh_authorized_keys", ystrs(d.sshKeys))
	}
	if d.ntp != nil {
		ntp := ymap(ystr("enabled"), ybool(true))
		if len(d.ntp.Servers) > 0 {
			ntp.Content = append(ntp.Content, ystr("servers"), ystrs(d.ntp.Servers))
		}
		if len(d.ntp.Pools) > 0 {
			ntp.Content = append(ntp.Content, ystr("pools"), ystrs(d.ntp.Pools))
		}
		add("ntp", ntp)
	}
	wf := yseq()
	file := func(f outFile) {
		wf.Content = append(wf.Content, ymap(
			ystr("path"), ystr(f.path),
			ystr("owner"), ystr(f.owner),
			ystr("permissions"), yquoted(f.mode),
			ystr("content"), yblock(string(f.content)),
		))
	}
	// The node's name resolves locally (kubeadm's preflight looks it up):
	// appended, as prebake-agent does on its path (agent.AddHost).
	wf.Content = append(wf.Content, ymap(
		ystr("path"), ystr(agent.HostsPath),
		ystr("append"), ybool(true),
		ystr("owner"), ystr("root:root"),
		ystr("permissions"), yquoted("0644"),
		ystr("content"), yblock(agent.HostsLine(d.name)),
	))
	for _, f := range d.files {
		file(f)
	}
	for _, f := range d.kubeletFiles {
		f.path = kubeletStage + f.path
		f.mode = "0600" // staged: only the join script reads them
		file(f)
	}
	if withJoin && d.joinScript != nil {
		file(outFile{path: d.scriptPath, content: d.joinScript, mode: "0700", owner: "root:root"})
	}
	// Last, so that everything else is in place when a join unit sees it.
	// The kubelet join mode has no kubeadm configuration (and must not
	// trigger the image's kubeadm join unit).
	if d.joinMode != JoinModeKubelet {
		file(outFile{path: d.configPath, content: d.joinConfig, mode: "0600", owner: "root:root"})
	}
	add("write_files", wf)
	if withJoin && d.joinScript != nil {
		add("runcmd", yseq(yflow(ystr("/bin/sh"), ystr(d.scriptPath))))
	}
	var b bytes.Buffer
	// About the document's size (the files' contents, indented, and their
	// keys): one allocation instead of the buffer doubling its way up.
	size := 768 + len(d.header) + len(d.agentBlock) + (len(d.joinConfig)+len(d.joinScript))*5/4
	for _, f := range d.files {
		size += 128 + len(f.content)*5/4
	}
	for _, f := range d.kubeletFiles {
		size += 128 + len(f.content)*5/4
	}
	b.Grow(size)
	b.WriteString("#cloud-config\n# ")
	b.WriteString(d.header)
	b.WriteString(", ")
	if !withJoin && d.joinScript != nil {
		b.WriteString("joined by the text/x-shellscript part")
	} else {
		b.WriteString(d.joinBy)
	}
	b.WriteByte('\n')
	// YAML comments: cloud-init ignores the block, prebake-agent reads it.
	b.Write(d.agentBlock)
	emitYAML(&b, root)
	return b.Bytes(), nil
}
