package apply

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/ospkg"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// Options configure Apply and Rollback.
type Options struct {
	// Root is the root filesystem to change; empty means "/".
	Root string
	// VerifyKey is the public key (PEM file, env://VAR or KMS URI) the
	// image's signature must verify with. Required unless NoVerify.
	VerifyKey string
	// NoVerify applies an image without checking its signature (a revoked
	// digest is still refused).
	NoVerify bool
	// Platform picks the image of an index, "os/arch[/variant]"; empty
	// means linux/<this machine>.
	Platform string
	// DryRun computes and returns the changes without touching the root.
	DryRun bool
	// InstallOSPackages installs the image's osPackages the root lacks with
	// its package manager (apt-get); without it, Apply fails naming them.
	InstallOSPackages bool
	// SkipOSPackagesCheck does not read the root's package database.
	SkipOSPackagesCheck bool
	// Registry reaches the image.
	Registry registry.Options
	// Log receives one line per after-apply step and skipped step; nil
	// discards them.
	Log io.Writer
}

// Result is what Apply, Rollback or Recover did.
type Result struct {
	// Record is the record now applied (nil when nothing is).
	Record *Record `json:"record,omitempty"`
	// Changes moved the root (or would, for a dry run).
	Changes Changes `json:"changes"`
	// Recovered is set when an interrupted transition was completed first.
	Recovered bool `json:"recovered,omitempty"`
	// Installed are the OS packages installed (for a dry run with
	// InstallOSPackages: that would be).
	Installed []string `json:"installed,omitempty"`
	// Steps are the after-apply steps run or skipped, one line each.
	Steps  []string `json:"steps,omitempty"`
	DryRun bool     `json:"dryRun,omitempty"`
}

type applier struct {
	o    Options
	dir  string // the root directory
	root *os.Root
	st   state
	log  io.Writer
}

func open(o Options) (*applier, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	dir, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 && !o.DryRun {
		return nil, fmt.Errorf("%w: files get the owners the image gives them", ErrNotRoot)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", dir, err)
	}
	a := &applier{o: o, dir: dir, root: r, st: newState(dir), log: o.Log}
	if a.log == nil {
		a.log = io.Discard
	}
	return a, nil
}

func (a *applier) close() { a.root.Close() }

// Apply verifies the image ref names and moves the root to it. ref must
// name a digest. An interrupted earlier transition is completed first.
func Apply(ctx context.Context, ref registry.Reference, o Options) (*Result, error) {
	if ref.Digest == "" {
		return nil, fmt.Errorf("applying %s: %w: name the image as REF@sha256:…", ref, registry.ErrDigestRequired)
	}
	if o.VerifyKey == "" && !o.NoVerify {
		return nil, fmt.Errorf("applying %s: %w: give the public key to verify its signature with (or waive the check explicitly)", ref, ErrUnsigned)
	}
	a, err := open(o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	res := &Result{DryRun: o.DryRun}
	if !o.DryRun {
		if res.Recovered, err = a.recover(ctx); err != nil {
			return nil, err
		}
	}

	// Verify first: nothing is read from the image before.
	verified := false
	if o.NoVerify {
		revs, err := registry.Revocations(ctx, ref, o.Registry)
		if err != nil {
			return nil, fmt.Errorf("checking revocation of %s: %w", ref, err)
		}
		if len(revs) > 0 {
			return nil, fmt.Errorf("applying %s: %w: revoked (%s)", ref, signing.ErrRevoked, revs[0].Reason)
		}
	} else {
		if _, err := signing.Verify(ctx, ref, signing.VerifyOptions{Key: o.VerifyKey, Registry: o.Registry}); err != nil {
			return nil, err
		}
		verified = true
	}
	img, err := platformImage(ctx, ref, o)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	imgDigest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	pkgs := ospkg.Split(m.Annotations[recipes.AnnotationOSPackages])
	if len(pkgs) > 0 && !o.SkipOSPackagesCheck {
		inst, err := a.osPackages(ctx, pkgs)
		if err != nil {
			return nil, fmt.Errorf("image %s on %s: %w", ref, a.dir, err)
		}
		res.Installed = inst
	}

	// Keep the image on the root, so rollbacks and recoveries need no
	// network, and read the layers from that copy.
	if !o.DryRun {
		lay := a.st.storeLayout(imgDigest.String())
		if _, err := registry.Write(ctx, registry.Reference{Transport: registry.TransportLayout, Dir: lay, Tag: "applied"}, img, nil, o.Registry); err != nil {
			return nil, fmt.Errorf("keeping %s under %s: %w", imgDigest, lay, err)
		}
		step()
		if img, err = a.stored(ctx, imgDigest.String()); err != nil {
			return nil, err
		}
	}
	comps, removed, err := scan(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	from, err := a.st.record(appliedFile)
	if err != nil {
		return nil, err
	}
	to := &Record{
		SchemaVersion: 1, Ref: ref.String(), Digest: ref.Digest, Image: imgDigest.String(), Platform: platformOf(o.Platform),
		Verified: verified, KubernetesVersion: m.Annotations[recipes.AnnotationKubernetesVersion], OSPackages: pkgs,
		Components: comps, Removed: removed,
	}
	if err := a.plan(from, to); err != nil {
		return nil, err
	}
	res.Changes = diff(from, to)
	res.Record = to
	if o.DryRun {
		return res, nil
	}
	j := &journal{Op: "apply", From: from, To: to}
	if err := a.run(ctx, j, img); err != nil {
		return nil, err
	}
	res.Steps = a.after(ctx, to, res.Changes)
	return res, nil
}

// plan fills in what to needs from the root as it is now: the directories
// apply will create, and backups of the root's own entries the image
// replaces or removes (taken now, before the journal is written).
func (a *applier) plan(from, to *Record) error {
	tf := to.files()
	ff := from.files()
	fromBackups := from.backups()
	managed := func(p string) bool {
		if _, ok := ff[p]; ok {
			return true
		}
		return from.removed()[p]
	}
	// Backups carried over for paths the image still claims.
	var carried []File
	if from != nil {
		carried = from.Backups
	}
	for _, b := range carried {
		for _, p := range append(sortedKeys(tf), to.Removed...) {
			if b.Path == p || under(b.Path, p) && to.removed()[p] {
				to.Backups = append(to.Backups, b)
				break
			}
		}
	}
	// New backups: the root's own entries at paths the image now claims.
	claim := []string{}
	for _, p := range sortedKeys(tf) {
		if tf[p].Type != TypeDir && !managed(p) {
			claim = append(claim, p)
		}
	}
	for _, p := range to.Removed {
		if !managed(p) {
			claim = append(claim, p)
		}
	}
	for _, p := range claim {
		if _, ok := fromBackups[p]; ok {
			continue
		}
		if a.o.DryRun {
			continue
		}
		bs, err := a.backup(p)
		if err != nil {
			return fmt.Errorf("backing up /%s: %w", p, err)
		}
		to.Backups = append(to.Backups, bs...)
	}
	sort.Slice(to.Backups, func(i, k int) bool { return to.Backups[i].Path < to.Backups[k].Path })
	// Directories: those the previous record made and still needed, and
	// those missing now.
	need := map[string]bool{}
	for p, f := range tf {
		if f.Type == TypeDir {
			need[p] = true
		}
		for d := parent(p); d != ""; d = parent(d) {
			need[d] = true
		}
	}
	had := map[string]bool{}
	if from != nil {
		for _, d := range from.Dirs {
			had[d] = true
		}
	}
	for _, d := range sortedKeys(need) {
		if had[d] {
			to.Dirs = append(to.Dirs, d)
			continue
		}
		if _, err := a.root.Stat(d); err != nil {
			to.Dirs = append(to.Dirs, d)
		}
	}
	return nil
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return ""
}

// run writes the journal, moves the root, commits the records and drops
// stored images and backups no record needs.
func (a *applier) run(ctx context.Context, j *journal, img v1.Image) error {
	if err := a.st.writeJSON(journalFile, j); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	step()
	if err := a.transition(ctx, j, img); err != nil {
		return fmt.Errorf("applying %s (the journal %s completes it on the next apply): %w", j.To.ref(), a.st.path(journalFile), err)
	}
	step()
	if err := a.st.commit(j); err != nil {
		return err
	}
	return a.st.gc(j.To, j.From)
}

func (r *Record) ref() string {
	if r == nil {
		return "nothing"
	}
	return r.Ref
}

// stored opens an image kept under the state directory.
func (a *applier) stored(ctx context.Context, digest string) (v1.Image, error) {
	lay := a.st.storeLayout(digest)
	art, _, err := registry.Get(ctx, registry.Reference{Transport: registry.TransportLayout, Dir: lay, Digest: digest}, registry.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: the image %s kept under %s: %v", ErrCorrupt, digest, lay, err)
	}
	img, ok := art.(v1.Image)
	if !ok {
		return nil, fmt.Errorf("%w: %s under %s is not an image", ErrCorrupt, digest, lay)
	}
	return img, nil
}

// recover completes a transition a crash interrupted.
func (a *applier) recover(ctx context.Context) (bool, error) {
	j, err := a.st.journal()
	if err != nil || j == nil {
		return false, err
	}
	var img v1.Image
	if j.To != nil {
		if img, err = a.stored(ctx, j.To.Image); err != nil {
			return false, fmt.Errorf("completing the interrupted %s of %s: %w", j.Op, j.To.ref(), err)
		}
	}
	fmt.Fprintf(a.log, "completing the interrupted %s of %s\n", j.Op, j.To.ref())
	if err := a.transition(ctx, j, img); err != nil {
		return false, fmt.Errorf("completing the interrupted %s of %s: %w", j.Op, j.To.ref(), err)
	}
	if err := a.st.commit(j); err != nil {
		return false, err
	}
	return true, a.st.gc(j.To, j.From)
}

// Recover completes an interrupted apply or rollback, if there is one.
func Recover(ctx context.Context, o Options) (*Result, error) {
	a, err := open(o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	rec, err := a.recover(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := a.st.record(appliedFile)
	return &Result{Record: cur, Recovered: rec}, err
}

// Rollback moves the root back to the previous record (the one the last
// apply replaced), from the image kept on the root. The two records swap,
// so a second rollback returns to where the first started.
func Rollback(ctx context.Context, o Options) (*Result, error) {
	a, err := open(o)
	if err != nil {
		return nil, err
	}
	defer a.close()
	res := &Result{DryRun: o.DryRun}
	if !o.DryRun {
		if res.Recovered, err = a.recover(ctx); err != nil {
			return nil, err
		}
	}
	cur, err := a.st.record(appliedFile)
	if err != nil {
		return nil, err
	}
	prev, err := a.st.record(previousFile)
	if err != nil {
		return nil, err
	}
	if prev == nil {
		return nil, fmt.Errorf("rolling back %s: %w (%s)", a.dir, ErrNoPrevious, a.st.path(previousFile))
	}
	img, err := a.stored(ctx, prev.Image)
	if err != nil {
		return nil, err
	}
	to := *prev
	to.Backups, to.Dirs = nil, nil
	if err := a.plan(cur, &to); err != nil {
		return nil, err
	}
	res.Changes = diff(cur, &to)
	res.Record = &to
	if o.DryRun {
		return res, nil
	}
	if err := a.run(ctx, &journal{Op: "rollback", From: cur, To: &to}, img); err != nil {
		return nil, err
	}
	res.Steps = a.after(ctx, &to, res.Changes)
	return res, nil
}

// Status is what a root has applied.
type Status struct {
	Applied  *Record `json:"applied,omitempty"`
	Previous *Record `json:"previous,omitempty"`
	// Interrupted is the transition a crash left in the journal, which the
	// next apply completes.
	Interrupted *Interrupted `json:"interrupted,omitempty"`
}

// Interrupted names a pending transition.
type Interrupted struct {
	Op   string `json:"op"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// ReadStatus reads the records under root (empty means "/").
func ReadStatus(root string) (*Status, error) {
	if root == "" {
		root = "/"
	}
	st := newState(root)
	var s Status
	var err error
	if s.Applied, err = st.record(appliedFile); err != nil {
		return nil, err
	}
	if s.Previous, err = st.record(previousFile); err != nil {
		return nil, err
	}
	j, err := st.journal()
	if err != nil {
		return nil, err
	}
	if j != nil {
		s.Interrupted = &Interrupted{Op: j.Op}
		if j.From != nil {
			s.Interrupted.From = j.From.Ref
		}
		if j.To != nil {
			s.Interrupted.To = j.To.Ref
		}
	}
	return &s, nil
}

func platformOf(p string) string {
	if p == "" {
		return "linux/" + runtime.GOARCH
	}
	return p
}

// platformImage resolves ref to the image of o.Platform.
func platformImage(ctx context.Context, ref registry.Reference, o Options) (v1.Image, error) {
	art, _, err := registry.Get(ctx, ref, o.Registry)
	if err != nil {
		return nil, err
	}
	return registry.PlatformImage(art, platformOf(o.Platform))
}
