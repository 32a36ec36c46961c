// Package render is `prebake render` as one call: it loads and checks node
// specs (every problem of every file at once), reads each node's Kubernetes
// version, join unit, init unit and agent from its image's annotations (or
// takes them as given), renders the documents with cloudinit (pure, in
// parallel), issues one-time bootstrap tokens when the documents are to be
// fetched at boot, and writes one file per node, 0600, with one sync for
// the whole fleet. Nothing is written unless every node renders.
package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prebake/prebake/cloudinit"
	"github.com/prebake/prebake/internal/atomicfile"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/server/bootstrap"
)

// Options configure Run.
type Options struct {
	// Kubernetes is the version every node gets (X.Y.Z); no image is read.
	// JoinUnit, InitUnit and Agent go with it: the image's join unit, init
	// unit (Init only) and whether it bakes prebake-agent.
	Kubernetes, JoinUnit, InitUnit string
	Agent                          bool
	// Image, REF@DIGEST, overrides the specs' image field: without
	// Kubernetes, each node's facts come from its image's annotations
	// (Platform picks the image of an index; Registry reaches it).
	Image    string
	Platform string
	Registry registry.Options
	// Init renders the first control plane (kubeadm init) instead of joins.
	Init bool
	// Format, Gzip, MaxSize and AllowUnsafeSkipCAVerification are
	// cloudinit.Options'.
	Format                        cloudinit.Format
	Gzip                          bool
	MaxSize                       cloudinit.SizeLimit
	AllowUnsafeSkipCAVerification bool
	// BootstrapURL and BootstrapDir, together, keep the secrets out of
	// instance metadata: each full document is stored in BootstrapDir
	// behind a one-time token valid for BootstrapTTL, and the rendered
	// document only fetches BootstrapURL/TOKEN.
	BootstrapURL, BootstrapDir string
	BootstrapTTL               time.Duration
	// Output is where the documents go: "" keeps them in memory (one node
	// only: the caller prints it), a file (one node), or a directory that
	// gets NODE.EXT per node (see Ext).
	Output string
	// Warn receives the specs' warnings; nil drops them.
	Warn func(string)
}

// Document is one node's rendered user-data.
type Document struct {
	// Node is the node's name; Path where the document was written ("" when
	// Output is "").
	Node, Path string
	// Size is the document's length in bytes.
	Size int
	// Data is the document; nil for a fleet written to a new directory,
	// whose documents are written as they render, not kept.
	Data []byte
}

// Run loads the specs in paths, renders them and writes them to o.Output.
func Run(ctx context.Context, paths []string, o Options) ([]Document, error) {
	if o.Kubernetes != "" {
		if _, err := cloudinit.ParseKubernetesVersion(o.Kubernetes); err != nil {
			return nil, err
		}
	}
	specs, err := load(paths, o)
	if err != nil {
		return nil, err
	}
	if o.Init && len(specs) > 1 {
		return nil, fmt.Errorf("%w: got %d", ErrInitOneNode, len(specs))
	}
	if len(specs) > 1 && o.Output == "" {
		return nil, fmt.Errorf("%d nodes: %w", len(specs), ErrOutputDirRequired)
	}
	opts, err := nodeOptions(ctx, specs, o)
	if err != nil {
		return nil, err
	}
	// A fleet into a new directory is written while it renders, into a
	// hidden directory that becomes the output only once every node has
	// rendered and it is synced (atomicfile.NewDir).
	ext := Ext(o.Format, o.Gzip)
	var nd *atomicfile.NewDir
	sizes := make([]int, len(specs))
	if len(specs) > 1 && o.BootstrapURL == "" {
		nd, err = atomicfile.CreateDir(o.Output, 0o600)
		switch {
		case errors.Is(err, fs.ErrExist):
			nd = nil
		case err != nil:
			return nil, err
		default:
			defer nd.Abort()
		}
	}
	var data [][]byte
	if nd != nil {
		data, err = renderInto(nd, specs, opts, ext, sizes)
	} else {
		data, err = renderGroups(specs, opts, nil)
	}
	if err != nil {
		return nil, err
	}
	if o.BootstrapURL != "" {
		if data, err = issue(data, o); err != nil {
			return nil, err
		}
	}
	docs := make([]Document, len(specs))
	for i, s := range specs {
		docs[i] = Document{Node: s.Node.Name, Size: sizes[i], Data: data[i]}
		if data[i] != nil {
			docs[i].Size = len(data[i])
		}
	}
	if o.Output == "" {
		return docs, nil
	}
	if nd != nil {
		err := nd.Commit()
		if err == nil {
			for i := range docs {
				docs[i].Path = filepath.Join(filepath.Clean(o.Output), docs[i].Node+ext)
			}
			return docs, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// The directory appeared meanwhile: render again (the same bytes)
		// and write into it.
		if data, err = renderGroups(specs, opts, nil); err != nil {
			return nil, err
		}
		for i := range docs {
			docs[i].Data = data[i]
		}
	}
	return docs, write(o.Output, docs, ext)
}

// load reads every spec file, reporting the problems of all of them at once,
// and refuses a node given twice.
func load(paths []string, o Options) ([]*cloudinit.NodeConfig, error) {
	var specs []*cloudinit.NodeConfig
	var problems []cloudinit.Problem
	for _, p := range paths {
		load := cloudinit.Load
		if o.Init {
			load = cloudinit.LoadInit
		}
		s, err := load(p)
		if err != nil {
			var se *cloudinit.SpecError
			if errors.As(err, &se) {
				problems = append(problems, se.Problems...)
				continue
			}
			return nil, err
		}
		specs = append(specs, s...)
	}
	if len(problems) > 0 {
		return nil, &cloudinit.SpecError{Problems: problems}
	}
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		if o.Warn != nil {
			for _, w := range cloudinit.Warnings(s) {
				o.Warn(w)
			}
		}
		if seen[s.Node.Name] {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateNode, s.Node.Name)
		}
		seen[s.Node.Name] = true
	}
	return specs, nil
}

// imageInfo is what rendering needs from an image's annotations.
type imageInfo struct {
	kubernetes, joinUnit, initUnit string
	agent                          bool
}

// nodeOptions gives each spec its cloudinit.Options, reading each image's
// annotations once.
func nodeOptions(ctx context.Context, specs []*cloudinit.NodeConfig, o Options) ([]cloudinit.Options, error) {
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
		ann, err := registry.Annotations(ctx, r, o.Platform, o.Registry)
		if err != nil {
			return imageInfo{}, fmt.Errorf("reading annotations of %s: %w", ref, err)
		}
		ii := imageInfo{kubernetes: ann[recipes.AnnotationKubernetesVersion], joinUnit: ann[recipes.AnnotationJoinUnit],
			initUnit: ann[recipes.AnnotationInitUnit], agent: ann[cloudinit.AnnotationAgent] != ""}
		if ii.kubernetes == "" {
			return imageInfo{}, fmt.Errorf("image %s has no %s annotation: %w", ref, recipes.AnnotationKubernetesVersion, ErrNoKubernetesVersion)
		}
		infos[ref] = ii
		return ii, nil
	}
	base := cloudinit.Options{
		Format:                        o.Format,
		Gzip:                          o.Gzip,
		MaxSize:                       o.MaxSize,
		AllowUnsafeSkipCAVerification: o.AllowUnsafeSkipCAVerification,
		Init:                          o.Init,
	}
	if o.BootstrapURL != "" {
		// The full document is fetched at boot: stored uncompressed and
		// unlimited; compression and the limit apply to what is rendered.
		base.Gzip, base.MaxSize = false, cloudinit.SizeLimit{}
	}
	opts := make([]cloudinit.Options, len(specs))
	for i, s := range specs {
		c := base
		switch {
		case o.Kubernetes != "":
			c.KubernetesVersion, c.JoinUnit, c.Agent, c.InitUnit = o.Kubernetes, o.JoinUnit, o.Agent, o.InitUnit
		case o.Image != "" || s.Image != "":
			ref := o.Image
			if ref == "" {
				ref = s.Image
			}
			ii, err := info(ref)
			if err != nil {
				return nil, err
			}
			c.KubernetesVersion, c.JoinUnit, c.Agent = ii.kubernetes, ii.joinUnit, ii.agent
			if o.Init {
				c.JoinUnit, c.Agent, c.InitUnit = "", false, ii.initUnit
			}
		default:
			return nil, fmt.Errorf("node %s: %w: no image to read it from", s.Node.Name, ErrNoKubernetesVersion)
		}
		opts[i] = c
	}
	return opts, nil
}

// renderInto renders while one goroutine writes each document into nd as
// it comes out (one: two goroutines creating files in one directory contend
// for its lock) and drops it; sizes gets each document's length.
func renderInto(nd *atomicfile.NewDir, specs []*cloudinit.NodeConfig, opts []cloudinit.Options, ext string, sizes []int) ([][]byte, error) {
	type job struct {
		i   int
		doc []byte
	}
	jobs := make(chan job, 64)
	written := make(chan error, 1)
	go func() {
		var err error
		for j := range jobs {
			if err == nil {
				err = nd.Write(specs[j.i].Node.Name+ext, j.doc)
			}
		}
		written <- err
	}()
	data, err := renderGroups(specs, opts, func(i int, doc []byte) error {
		sizes[i] = len(doc)
		jobs <- job{i, doc}
		return nil
	})
	close(jobs)
	if werr := <-written; err == nil {
		err = werr
	}
	return data, err
}

// renderGroups renders the nodes sharing options together (in parallel),
// handing each document to each (when not nil) as soon as it is rendered.
func renderGroups(specs []*cloudinit.NodeConfig, opts []cloudinit.Options, each func(i int, doc []byte) error) ([][]byte, error) {
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
		var fn func(j int, doc []byte) error
		if each != nil {
			fn = func(j int, doc []byte) error { return each(idx[j], doc) }
		}
		out, err := cloudinit.RenderEach(group, o, fn)
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
		return nil, joinErrors(errs)
	}
	return docs, nil
}

func joinErrors(errs []error) error {
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

// issue stores each full document behind a one-time token and returns the
// documents that fetch them.
func issue(docs [][]byte, o Options) ([][]byte, error) {
	fetchOpts := cloudinit.Options{Format: o.Format, Gzip: o.Gzip, MaxSize: o.MaxSize}
	stubs := make([][]byte, len(docs))
	url := strings.TrimSuffix(o.BootstrapURL, "/")
	// Check the URL before any token is issued.
	if _, err := cloudinit.RenderFetch(url+"/check", fetchOpts); err != nil {
		return nil, err
	}
	for i, d := range docs {
		token, err := bootstrap.Issue(o.BootstrapDir, d, o.BootstrapTTL)
		if err != nil {
			return nil, err
		}
		if stubs[i], err = cloudinit.RenderFetch(url+"/"+token, fetchOpts); err != nil {
			return nil, err
		}
	}
	return stubs, nil
}

// Ext is the file name extension of a document: .yaml, .mime or .ign, and
// .gz when gzipped.
func Ext(format cloudinit.Format, gz bool) string {
	ext := map[cloudinit.Format]string{
		cloudinit.FormatCloudConfig: ".yaml",
		cloudinit.FormatMIME:        ".mime",
		cloudinit.FormatIgnition:    ".ign",
	}[format]
	if format == "" {
		ext = ".yaml"
	}
	if gz {
		ext += ".gz"
	}
	return ext
}

// write puts one document in a file (output is not a directory), or every
// document in the directory output, 0600 (they hold the bootstrap token).
// A new directory is filled under a hidden name and renamed into place
// after one sync (atomicfile.WriteDir); an existing one gets each file
// replaced atomically, also with one sync (atomicfile.WriteFiles).
func write(output string, docs []Document, ext string) error {
	if len(docs) == 1 {
		if fi, err := os.Stat(output); err != nil || !fi.IsDir() {
			docs[0].Path = output
			return atomicfile.WriteFile(output, docs[0].Data, 0o600)
		}
	}
	files := make([]atomicfile.File, len(docs))
	for i := range docs {
		files[i] = atomicfile.File{Name: docs[i].Node + ext, Data: docs[i].Data}
	}
	if err := atomicfile.WriteDir(output, files, 0o600); err != nil {
		return err
	}
	for i := range docs {
		docs[i].Path = filepath.Join(filepath.Clean(output), files[i].Name)
	}
	return nil
}
