package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/cloudinit"
	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/server/bootstrap"
)

type renderFlags struct {
	rf            registryFlags
	image         string
	kubernetes    string
	joinUnit      string
	initUnit      string
	init          bool
	agent         bool
	platform      string
	format        string
	gzip          bool
	output        string
	maxSize       string
	allowUnsafeCA bool
	bootstrapURL  string
	bootstrapDir  string
	bootstrapTTL  time.Duration
}

func newRenderCmd(a *app) *cobra.Command {
	var f renderFlags
	cmd := &cobra.Command{
		Use:   "render NODE.yaml... [--image REF@DIGEST | --kubernetes X.Y.Z] [--format cloud-config|mime|ignition] [--gzip] [-o FILE|DIR]",
		Short: "Render the per-node cloud-init user-data (or Ignition config) that joins a node",
		Long: `Render turns node specs (apiVersion prebake.dev/v1alpha1, kind NodeConfig,
or NodeConfigList for a fleet) into the user-data a VM booting a prebake image
needs: the kubeadm JoinConfiguration, the credentials, and the join itself.
Nothing is installed or downloaded at boot - the image already has it.

The Kubernetes version picks the JoinConfiguration's API version (kubeadm
v1beta3 up to 1.30, v1beta4 from 1.31). It comes from the image's
dev.prebake.kubernetes.version annotation (--image REF@DIGEST, or the spec's
image field) or from --kubernetes. When the image declares prebake's join
unit (dev.prebake.join-unit), the cloud-init formats only write files and the
unit joins as soon as /run/prebake/kubeadm-join.yaml appears; otherwise a
runcmd script joins. When the image bakes prebake-agent (dev.prebake.agent),
the cloud-init formats also carry the agent's block (YAML comments): the agent
joins early in boot and cloud-init stands down; without the agent, cloud-init
joins from the same document (docs/agent.md). Either way /run/cluster-api/bootstrap-success.complete is
written when the join succeeds.

With --init the spec is the first control plane's: the output runs kubeadm
init with an InitConfiguration and a ClusterConfiguration (same API versions)
instead of joining. It needs no bootstrap token or CA pin (a token given is
created by the init, so that joins rendered with it work); cluster.caKeyFile
with caCertFile makes it use that CA (written 0600 under /etc/kubernetes/pki,
so render the joins' pins before it boots), and node.certificateKey uploads
the control-plane certificates for control-plane joins. When the image declares
an init unit (dev.prebake.init-unit) only files are written and the unit runs
kubeadm init as soon as /run/prebake/kubeadm-init.yaml appears; otherwise a
runcmd script does. cloud-config and mime only. Such user-data holds the CA
key: deliver it with --bootstrap-url (docs/cluster.md).

Formats: cloud-config (default), mime (multipart: the cloud-config plus the
join script), ignition (spec 3.3.0, for Flatcar). --gzip compresses
deterministically. The same input always gives the same bytes.

The spec is checked strictly; every problem is reported with file:line:column
and nothing is written unless every node renders. The size of each document
is printed to stderr; --max-size aws|openstack|gce|BYTES fails when one is
too large (aws: 16384 bytes; openstack: 65535 after base64; gce: 262144).

One node writes to stdout or -o FILE. Several (a NodeConfigList, or several
files) need -o DIR and get DIR/NODE.yaml (.mime, .ign; .gz with --gzip).
Rendered files are written 0600: they hold the bootstrap token.

With --bootstrap-url URL --bootstrap-dir DIR the secrets stay out of the
instance metadata: the full document is stored in DIR behind a one-time token
that expires after --bootstrap-ttl, and the rendered user-data only fetches
URL/TOKEN (cloud-init #include; Ignition config.replace). Serve DIR with
'prebake serve --bootstrap-dir DIR' and pass its /bootstrap URL.`,
		Example: `  # a worker of the quickstart image, Kubernetes version from the image
  prebake render node.yaml --image registry.example.com/nodes/k8s@sha256:… -o user-data.yaml

  # without a registry: say the version
  prebake render node.yaml --kubernetes 1.36.4

  # a fleet, gzipped, checked against the AWS user-data limit
  prebake render fleet.yaml --kubernetes 1.36.4 --gzip --max-size aws -o out/

  # the first control plane, with a CA of your own (its joins' pins known in advance)
  prebake render cp-1.yaml --init --image registry.example.com/nodes/k8s-cp@sha256:… -o cp-1.yaml

  # Flatcar
  prebake render node.yaml --kubernetes 1.36.4 --format ignition -o node.ign

  # keep the token out of instance metadata
  prebake render node.yaml --kubernetes 1.36.4 \
    --bootstrap-url https://prebake.example.com:5000/bootstrap --bootstrap-dir /var/lib/prebake/bootstrap`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRender(cmd, a, &f, args)
		},
	}
	fl := cmd.Flags()
	f.rf.register(cmd, false)
	fl.StringVar(&f.image, "image", "", "the image the nodes boot, REF@sha256:…; its annotations give the Kubernetes version and join unit (overrides the spec's image)")
	fl.StringVar(&f.kubernetes, "kubernetes", "", "Kubernetes version X.Y.Z, instead of reading it from the image")
	fl.StringVar(&f.joinUnit, "join-unit", "", "with --kubernetes: the image's join unit (e.g. prebake-join.path); empty joins through runcmd")
	fl.BoolVar(&f.init, "init", false, "render the first control plane: kubeadm init (InitConfiguration + ClusterConfiguration) instead of a join")
	fl.StringVar(&f.initUnit, "init-unit", "", "with --init and --kubernetes: the image's init unit (e.g. prebake-init.path); empty runs kubeadm init through runcmd")
	fl.BoolVar(&f.agent, "agent", false, "with --kubernetes: add the prebake-agent block (the image bakes prebake-agent; with an image, read from its dev.prebake.agent annotation)")
	fl.StringVar(&f.platform, "platform", "", "os/arch of the image to read annotations from when --image is an index (default: its first image)")
	fl.StringVar(&f.format, "format", string(cloudinit.FormatCloudConfig), "output format: cloud-config, mime or ignition")
	fl.BoolVar(&f.gzip, "gzip", false, "gzip the output (deterministic: no name, mtime 0)")
	fl.StringVarP(&f.output, "output", "o", "", "output file (one node) or directory (several); default stdout")
	fl.StringVar(&f.maxSize, "max-size", "", "fail when a document is over a size limit: aws, openstack, gce or BYTES")
	fl.BoolVar(&f.allowUnsafeCA, "allow-unsafe-skip-ca-verification", false, "permit cluster.unsafeSkipCAVerification (joins without pinning the cluster CA)")
	fl.StringVar(&f.bootstrapURL, "bootstrap-url", "", "render user-data that only fetches the real document from this prebake serve /bootstrap URL")
	fl.StringVar(&f.bootstrapDir, "bootstrap-dir", "", "with --bootstrap-url: the directory prebake serve --bootstrap-dir reads")
	fl.DurationVar(&f.bootstrapTTL, "bootstrap-ttl", time.Hour, "with --bootstrap-url: how long each one-time token stays valid")
	return cmd
}

// imageInfo is what the renderer needs from an image's annotations.
type imageInfo struct {
	kubernetes, joinUnit, initUnit string
	agent                          bool
}

func runRender(cmd *cobra.Command, a *app, f *renderFlags, args []string) error {
	ctx := cmd.Context()
	format, err := cloudinit.ParseFormat(f.format)
	if err != nil {
		return err
	}
	var limit cloudinit.SizeLimit
	if f.maxSize != "" {
		if limit, err = cloudinit.ParseSizeLimit(f.maxSize); err != nil {
			return err
		}
	}
	if f.image != "" && f.kubernetes != "" {
		return fmt.Errorf("give --image or --kubernetes, not both")
	}
	if f.agent && f.kubernetes == "" {
		return fmt.Errorf("--agent goes with --kubernetes (with an image, the agent is read from its annotations)")
	}
	if f.joinUnit != "" && f.kubernetes == "" {
		return fmt.Errorf("--join-unit goes with --kubernetes (with an image, the join unit is read from its annotations)")
	}
	if f.initUnit != "" && (!f.init || f.kubernetes == "") {
		return fmt.Errorf("--init-unit goes with --init and --kubernetes (with an image, the init unit is read from its annotations)")
	}
	if f.init && f.agent {
		return fmt.Errorf("--agent joins; --init initializes the first control plane (give one)")
	}
	if (f.bootstrapURL == "") != (f.bootstrapDir == "") {
		return fmt.Errorf("--bootstrap-url and --bootstrap-dir go together")
	}
	if f.kubernetes != "" {
		if _, err := cloudinit.ParseKubernetesVersion(f.kubernetes); err != nil {
			return err
		}
	}

	// Load every spec first: all problems of all files at once.
	var specs []*cloudinit.NodeConfig
	var problems []cloudinit.Problem
	for _, p := range args {
		load := cloudinit.Load
		if f.init {
			load = cloudinit.LoadInit
		}
		s, err := load(p)
		if err != nil {
			var se *cloudinit.SpecError
			if errors.As(err, &se) {
				problems = append(problems, se.Problems...)
				continue
			}
			return err
		}
		specs = append(specs, s...)
	}
	if len(problems) > 0 {
		return &cloudinit.SpecError{Problems: problems}
	}
	seen := map[string]bool{}
	for _, s := range specs {
		for _, w := range cloudinit.Warnings(s) {
			fmt.Fprintf(a.Err, "warning: %s\n", w)
		}
		if seen[s.Node.Name] {
			return fmt.Errorf("node %s is given twice", s.Node.Name)
		}
		seen[s.Node.Name] = true
	}
	if f.init && len(specs) > 1 {
		return fmt.Errorf("--init renders one node, the first control plane; got %d (render the others as joins)", len(specs))
	}
	if len(specs) > 1 && f.output == "" {
		return fmt.Errorf("%d nodes: give -o DIR to write one file per node", len(specs))
	}

	// The Kubernetes version and join unit of each node's image.
	infos := map[string]imageInfo{}
	info := func(ref string) (imageInfo, error) {
		if ii, ok := infos[ref]; ok {
			return ii, nil
		}
		r, err := registry.ParseReference(ref)
		if err != nil {
			return imageInfo{}, err
		}
		if r.Digest == "" {
			return imageInfo{}, fmt.Errorf("image %s: %w: name the image the nodes boot as REF@sha256:…", ref, registry.ErrDigestRequired)
		}
		ann, err := registry.Annotations(ctx, r, f.platform, f.rf.options())
		if err != nil {
			return imageInfo{}, fmt.Errorf("reading annotations of %s: %w", ref, err)
		}
		ii := imageInfo{kubernetes: ann[recipes.AnnotationKubernetesVersion], joinUnit: ann[recipes.AnnotationJoinUnit],
			initUnit: ann[recipes.AnnotationInitUnit], agent: ann[cloudinit.AnnotationAgent] != ""}
		if ii.kubernetes == "" {
			return imageInfo{}, fmt.Errorf("image %s has no %s annotation: pass --kubernetes", ref, recipes.AnnotationKubernetesVersion)
		}
		infos[ref] = ii
		return ii, nil
	}
	base := cloudinit.Options{
		Format:                        format,
		Gzip:                          f.gzip,
		MaxSize:                       limit,
		AllowUnsafeSkipCAVerification: f.allowUnsafeCA,
		Init:                          f.init,
	}
	if f.bootstrapURL != "" {
		// The full document is fetched at boot: stored uncompressed and
		// unlimited; compression and the limit apply to what is rendered.
		base.Gzip, base.MaxSize = false, cloudinit.SizeLimit{}
	}
	optsFor := make([]cloudinit.Options, len(specs))
	for i, s := range specs {
		o := base
		switch {
		case f.kubernetes != "":
			o.KubernetesVersion, o.JoinUnit, o.Agent, o.InitUnit = f.kubernetes, f.joinUnit, f.agent, f.initUnit
		case f.image != "" || s.Image != "":
			ref := f.image
			if ref == "" {
				ref = s.Image
			}
			ii, err := info(ref)
			if err != nil {
				return err
			}
			o.KubernetesVersion, o.JoinUnit, o.Agent = ii.kubernetes, ii.joinUnit, ii.agent
			if f.init {
				o.JoinUnit, o.Agent, o.InitUnit = "", false, ii.initUnit
			}
		default:
			return fmt.Errorf("node %s: no Kubernetes version: pass --image REF@DIGEST or --kubernetes X.Y.Z, or set image in the spec", s.Node.Name)
		}
		optsFor[i] = o
	}
	docs, err := renderGroups(specs, optsFor)
	if err != nil {
		if !f.gzip && (f.bootstrapURL == "") {
			var sz *cloudinit.SizeError
			if errors.As(err, &sz) {
				return fmt.Errorf("%w (try --gzip)", err)
			}
		}
		return err
	}

	if f.bootstrapURL != "" {
		fetchOpts := cloudinit.Options{Format: format, Gzip: f.gzip, MaxSize: limit}
		stubs := make([][]byte, len(docs))
		url := strings.TrimSuffix(f.bootstrapURL, "/")
		// Check the URL before any token is issued.
		if _, err := cloudinit.RenderFetch(url+"/check", fetchOpts); err != nil {
			return err
		}
		for i, d := range docs {
			token, err := bootstrap.Issue(f.bootstrapDir, d, f.bootstrapTTL)
			if err != nil {
				return err
			}
			if stubs[i], err = cloudinit.RenderFetch(url+"/"+token, fetchOpts); err != nil {
				return err
			}
		}
		docs = stubs
	}
	return writeRendered(a, f, format, specs, docs, limit)
}

// renderGroups renders nodes sharing options together (in parallel).
func renderGroups(specs []*cloudinit.NodeConfig, opts []cloudinit.Options) ([][]byte, error) {
	docs := make([][]byte, len(specs))
	groups := map[cloudinit.Options][]int{}
	var order []cloudinit.Options
	for i, o := range opts {
		if _, ok := groups[o]; !ok {
			order = append(order, o)
		}
		groups[o] = append(groups[o], i)
	}
	var errs []error
	for _, o := range order {
		idx := groups[o]
		group := make([]*cloudinit.NodeConfig, len(idx))
		for j, i := range idx {
			group[j] = specs[i]
		}
		out, err := cloudinit.RenderAll(group, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for j, i := range idx {
			docs[i] = out[j]
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	if len(errs) > 1 {
		return nil, joinRenderErrors(errs)
	}
	return docs, nil
}

func joinRenderErrors(errs []error) error {
	var all []cloudinit.Problem
	for _, err := range errs {
		var se *cloudinit.SpecError
		if !errors.As(err, &se) {
			return err
		}
		all = append(all, se.Problems...)
	}
	return &cloudinit.SpecError{Problems: all}
}

func renderExt(format cloudinit.Format, gz bool) string {
	ext := map[cloudinit.Format]string{
		cloudinit.FormatCloudConfig: ".yaml",
		cloudinit.FormatMIME:        ".mime",
		cloudinit.FormatIgnition:    ".ign",
	}[format]
	if gz {
		ext += ".gz"
	}
	return ext
}

func writeRendered(a *app, f *renderFlags, format cloudinit.Format, specs []*cloudinit.NodeConfig, docs [][]byte, limit cloudinit.SizeLimit) error {
	report := func(name string, n int) {
		if a.quiet {
			return
		}
		what := string(format)
		if f.gzip {
			what += ", gzip"
		}
		if f.bootstrapURL != "" {
			what += ", fetches its document once from " + f.bootstrapURL
		}
		lim := ""
		if limit.Bytes > 0 {
			lim = fmt.Sprintf(" (limit %d)", limit.Bytes)
			if limit.Name != "" {
				lim = fmt.Sprintf(" (%s limit %d)", limit.Name, limit.Bytes)
			}
		}
		fmt.Fprintf(a.Err, "%s: %d bytes %s%s\n", name, n, what, lim)
	}
	if f.output == "" {
		report(specs[0].Node.Name, len(docs[0]))
		_, err := a.Out.Write(docs[0])
		return err
	}
	if len(specs) == 1 {
		if fi, err := os.Stat(f.output); err != nil || !fi.IsDir() {
			if err := atomicfile.WriteFile(f.output, docs[0], 0o600); err != nil {
				return err
			}
			report(specs[0].Node.Name, len(docs[0]))
			return nil
		}
	}
	if err := os.MkdirAll(f.output, 0o755); err != nil {
		return err
	}
	// All documents, then one sync (atomicfile.WriteFiles): an fsync and a
	// rename per document capped this at ~560 documents/s on ext4.
	ext := renderExt(format, f.gzip)
	files := make([]atomicfile.File, len(specs))
	for i, s := range specs {
		files[i] = atomicfile.File{Name: s.Node.Name + ext, Data: docs[i]}
	}
	if err := atomicfile.WriteFiles(f.output, files, 0o600); err != nil {
		return err
	}
	for i, s := range specs {
		report(s.Node.Name, len(docs[i]))
	}
	return nil
}
