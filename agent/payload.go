// Package agent is the node half of prebake's early join: it reads the
// prebake block out of a node's user-data (the same document cloud-init
// reads), validates it completely, writes the files it carries atomically,
// claims the join with a stamp, and says which join to start.
//
// The block is written by `prebake render` (cloudinit.Options.Agent) as YAML
// comment lines inside the #cloud-config document, so the user-data stays
// valid cloud-init and a node without the agent joins through cloud-init as
// before:
//
//	# prebake-agent/v1 begin sha256=<hex of the JSON> bytes=<JSON length>
//	# <base64 of the gzip-compressed JSON Config, 64 characters a line>
//	# prebake-agent/v1 end
//
// The package uses the standard library only: cmd/prebake-agent links it and
// its datasources and nothing else of prebake.
package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// APIVersion and Kind of the block's JSON document.
const (
	APIVersion = "prebake.dev/v1alpha1"
	Kind       = "AgentConfig"
)

// Join modes.
const (
	// ModeKubeadm runs `kubeadm join --config KubeadmJoinPath`.
	ModeKubeadm = "kubeadm"
	// ModeKubelet writes the kubelet's configuration and bootstrap
	// kubeconfig and starts the kubelet directly (nodeadm-style).
	ModeKubelet = "kubelet"
)

// Well-known paths.
const (
	// Dir holds the agent's own files (0700).
	Dir = "/run/prebake/agent"
	// KubeadmJoinPath is where the kubeadm mode's JoinConfiguration goes:
	// not cloud-init's /run/prebake/kubeadm-join.yaml, so the image's
	// cloud-init join unit never sees a file the agent wrote.
	KubeadmJoinPath = Dir + "/kubeadm-join.yaml"
	// KubeletConfigPath and BootstrapKubeconfigPath are what the kubelet
	// mode needs at least (the kubeadm drop-in's paths).
	KubeletConfigPath       = "/var/lib/kubelet/config.yaml"
	BootstrapKubeconfigPath = "/etc/kubernetes/bootstrap-kubelet.conf"
	// StampPath claims the join: written before the join starts, checked by
	// the agent and by the image's cloud-init join unit (a drop-in), so a
	// node never joins twice, on this boot or a later one.
	StampPath = "/var/lib/prebake/joined"
	// FailedPath marks this boot's user-data as refused: the cloud-init join
	// unit does not run either. It lives in /run, so it lasts one boot.
	FailedPath = "/run/prebake/agent.failed"
	// KubeletConfPath is the kubeconfig a joined kubelet has.
	KubeletConfPath = "/etc/kubernetes/kubelet.conf"
)

// MaxUserData caps what the agent reads (decompressed): far above every
// provider's user-data limit.
const MaxUserData = 16 << 20

// Config is the block's JSON document.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Node is the Kubernetes node name (informational, for log lines).
	Node string `json:"node"`
	// JoinMode is ModeKubeadm or ModeKubelet.
	JoinMode string `json:"joinMode"`
	// Files are written in order before the join starts.
	Files []File `json:"files"`
}

// File is one file to write.
type File struct {
	Path    string `json:"path"`
	Mode    string `json:"mode"`            // four octal digits, e.g. "0600"
	Owner   string `json:"owner,omitempty"` // user:group, default root:root
	Content []byte `json:"content"`         // base64 in JSON
}

const (
	blockBegin = "# prebake-agent/v1 begin "
	blockEnd   = "# prebake-agent/v1 end"
	lineWidth  = 64
)

// Block encodes c as the comment block render puts in the #cloud-config
// document (each line ends with a newline). Deterministic.
func Block(c *Config) ([]byte, error) {
	js, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding agent config: %w", err)
	}
	return blockJSON(js)
}

// blockJSON is Block for an encoded document.
func blockJSON(js []byte) ([]byte, error) {
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing agent config: %w", err)
	}
	sum := sha256.Sum256(js)
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	var b bytes.Buffer
	fmt.Fprintf(&b, "%ssha256=%s bytes=%d\n", blockBegin, hex.EncodeToString(sum[:]), len(js))
	for len(enc) > 0 {
		n := min(lineWidth, len(enc))
		b.WriteString("# " + enc[:n] + "\n")
		enc = enc[n:]
	}
	b.WriteString(blockEnd + "\n")
	return b.Bytes(), nil
}

// Extract finds the prebake block in user-data (plain #cloud-config, a MIME
// multipart document whose text/cloud-config part carries it, either of
// them gzip-compressed), checks it and returns its validated Config.
// ErrNoPart means the user-data is readable but has no block (cloud-init
// joins); ErrMalformed and ErrInvalid mean it has one the agent refuses.
// Errors never quote the document (it holds the bootstrap token).
func Extract(userData []byte) (*Config, error) {
	data, err := gunzipIf(userData)
	if err != nil {
		return nil, fmt.Errorf("%w: user-data: %v", ErrMalformed, err)
	}
	if isMIME(data) {
		return fromMIME(data)
	}
	if !bytes.HasPrefix(data, []byte("#cloud-config")) {
		return nil, fmt.Errorf("%w (the user-data is not #cloud-config or MIME multipart)", ErrNoPart)
	}
	return fromCloudConfig(data, "user-data")
}

func gunzipIf(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxUserData+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %v", err)
	}
	if len(out) > MaxUserData {
		return nil, fmt.Errorf("over %d bytes decompressed", MaxUserData)
	}
	return out, nil
}

func isMIME(b []byte) bool {
	head := strings.ToLower(string(b[:min(len(b), 512)]))
	return strings.HasPrefix(head, "content-type:") || strings.HasPrefix(head, "mime-version:")
}

func fromMIME(data []byte) (*Config, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: MIME user-data: %v", ErrMalformed, err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("%w: MIME user-data: Content-Type: %v", ErrMalformed, err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return nil, fmt.Errorf("%w (a single %s MIME part)", ErrNoPart, mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var found *Config
	for i := 1; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: MIME part %d: %v", ErrMalformed, i, err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		var r io.Reader = p
		switch strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, p)
		case "quoted-printable":
			r = quotedprintable.NewReader(p)
		}
		body, err := io.ReadAll(io.LimitReader(r, MaxUserData+1))
		if err != nil {
			return nil, fmt.Errorf("%w: MIME part %d: %v", ErrMalformed, i, err)
		}
		if ct != "text/cloud-config" || !bytes.Contains(body, []byte(blockBegin)) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: two MIME parts carry a prebake agent block", ErrMalformed)
		}
		if found, err = fromCloudConfig(body, fmt.Sprintf("MIME part %d", i)); err != nil {
			return nil, err
		}
	}
	if found == nil {
		return nil, ErrNoPart
	}
	return found, nil
}

var beginRe = regexp.MustCompile(`^# prebake-agent/v1 begin sha256=([0-9a-f]{64}) bytes=([0-9]{1,9})$`)

// fromCloudConfig reads the block out of a #cloud-config document.
func fromCloudConfig(doc []byte, where string) (*Config, error) {
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 64<<10), MaxUserData)
	var (
		in, done   bool
		begin, end int
		sum        string
		size       int
		enc        strings.Builder
	)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, blockBegin):
			if in || done {
				return nil, fmt.Errorf("%w: %s line %d: a second block begins (the first at line %d)", ErrMalformed, where, n, begin)
			}
			m := beginRe.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("%w: %s line %d: want %q", ErrMalformed, where, n, blockBegin+"sha256=<64 hex> bytes=<n>")
			}
			sum = m[1]
			size, _ = strconv.Atoi(m[2])
			in, begin = true, n
		case in && line == blockEnd:
			in, done, end = false, true, n
		case in:
			s, ok := strings.CutPrefix(line, "# ")
			if !ok || strings.TrimLeft(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != "" {
				return nil, fmt.Errorf("%w: %s line %d: want \"# \" and base64 inside the block (or %q)", ErrMalformed, where, n, blockEnd)
			}
			enc.WriteString(s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, where, err)
	}
	if in {
		return nil, fmt.Errorf("%w: %s line %d: the block is not closed by %q (truncated user-data?)", ErrMalformed, where, begin, blockEnd)
	}
	if !done {
		return nil, ErrNoPart
	}
	z, err := base64.StdEncoding.DecodeString(enc.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %s lines %d-%d: base64: %v", ErrMalformed, where, begin, end, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("%w: %s lines %d-%d: gzip: %v", ErrMalformed, where, begin, end, err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, int64(size)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s lines %d-%d: gzip: %v", ErrMalformed, where, begin, end, err)
	}
	got := sha256.Sum256(js)
	if len(js) != size || hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("%w: %s lines %d-%d: content is %d bytes with sha256 %x, the block says %d bytes with sha256 %s",
			ErrMalformed, where, begin, end, len(js), got, size, sum)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s lines %d-%d: JSON: %v", ErrMalformed, where, begin, end, jsonErr(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s lines %d-%d: JSON: data after the document", ErrMalformed, where, begin, end)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// jsonErr keeps a decode error's position and field, never a value.
func jsonErr(err error) error {
	switch e := err.(type) {
	case *json.UnmarshalTypeError:
		return fmt.Errorf("field %s: want %s", e.Field, e.Type)
	case *json.SyntaxError:
		return fmt.Errorf("syntax error at offset %d", e.Offset)
	}
	if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(s, "json: unknown field "))
	}
	return fmt.Errorf("cannot decode")
}

var (
	modeRe  = regexp.MustCompile(`^0[0-7]{3}$`)
	ownerRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]*[$]?:[a-z_][a-z0-9_-]*[$]?$`)
)

// Validate reports every problem with c, each naming its field.
func (c *Config) Validate() error {
	var ps []string
	add := func(f string, a ...any) { ps = append(ps, fmt.Sprintf(f, a...)) }
	if c.APIVersion != APIVersion {
		add("apiVersion %q: want %s", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		add("kind %q: want %s", c.Kind, Kind)
	}
	if c.Node == "" {
		add("node: required")
	}
	seen := map[string]bool{}
	for i, f := range c.Files {
		switch {
		case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/":
			add("files[%d].path %q: want an absolute, clean path to a file", i, f.Path)
		case seen[f.Path]:
			add("files[%d].path %q: written twice", i, f.Path)
		}
		seen[f.Path] = true
		if !modeRe.MatchString(f.Mode) {
			add("files[%d].mode %q: want four octal digits (0000-0777)", i, f.Mode)
		}
		if f.Owner != "" && !ownerRe.MatchString(f.Owner) {
			add("files[%d].owner %q: want user:group", i, f.Owner)
		}
		if f.Path == StampPath || f.Path == FailedPath {
			add("files[%d].path %q: the agent's own stamp", i, f.Path)
		}
	}
	switch c.JoinMode {
	case ModeKubeadm:
		if !seen[KubeadmJoinPath] {
			add("files: the kubeadm join mode needs %s", KubeadmJoinPath)
		}
	case ModeKubelet:
		for _, p := range []string{KubeletConfigPath, BootstrapKubeconfigPath} {
			if !seen[p] {
				add("files: the kubelet join mode needs %s", p)
			}
		}
	default:
		add("joinMode %q: want %s or %s", c.JoinMode, ModeKubeadm, ModeKubelet)
	}
	if len(ps) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(ps, "; "))
	}
	return nil
}
