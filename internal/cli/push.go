package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/registry"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	insecure bool
	jobs     int
}

func (f *registryFlags) register(cmd *cobra.Command, withJobs bool) {
	cmd.Flags().BoolVar(&f.insecure, "insecure", false, "allow plain HTTP (loopback registries)")
	if withJobs {
		cmd.Flags().IntVar(&f.jobs, "jobs", 4, "blobs transferred at once")
	}
}

func (f *registryFlags) options() registry.Options {
	return registry.Options{Insecure: f.insecure, Jobs: f.jobs}
}

// progressOptions are options with the command's progress display; done
// ends the display.
func (f *registryFlags) progressOptions(a *app) (o registry.Options, done func()) {
	o = f.options()
	o.Progress, done = a.newProgress()
	return o, done
}

// copyOutput is what push/copy --json print.
type copyOutput struct {
	Source      string   `json:"source"`
	Destination string   `json:"destination"`
	Digest      string   `json:"digest"`
	Referrers   []string `json:"referrers,omitempty"`
	Manifests   int      `json:"manifests"`
	Blobs       int      `json:"blobs"`
	Uploaded    int64    `json:"uploadedBytes"`
	Skipped     int64    `json:"skippedBytes"`
	Mounted     int      `json:"mountedBlobs,omitempty"`
}

func newPushCmd(a *app) *cobra.Command {
	return newCopyLikeCmd(a, "push", "Push an image and its referrers from the store or a layout to a registry",
		`Push copies the image or index SRC names, with all its referrers (the SBOM,
signatures, channel records, revocations) and cosign's sha256-<hex>.sig/.att
tags, to DST. It is the same operation as "prebake copy"; the name reads better
when SRC is local.

Blobs move in parallel (--jobs) exactly as stored - nothing is recompressed -
and blobs DST already has are skipped after a HEAD request, so re-pushing an
unchanged image uploads nothing and a Kubernetes patch bump uploads one layer.
Within one registry, blobs are mounted from the source repository. Manifests
are written after their blobs and the tag last, so DST's tag never names an
incomplete image.

References: NAME[:TAG] or store:NAME[:TAG] (the local store), oci:DIR[:TAG]
(an OCI layout), host[:port]/repo[:tag|@digest] (a registry). Credentials come
from the Docker config and its credential helpers (docker login).`,
		`  # push the locally built image to a registry
  prebake push kubernetes-node:1.36.4 registry.example.com/nodes/kubernetes-node:1.36.4

  # to a loopback registry over plain HTTP, machine-readable
  prebake push store:quickstart:1.0 127.0.0.1:5000/quickstart:1.0 --insecure --json

  # publish an exported disk (prebake export) as an OCI artifact, linked to its image
  prebake push node.qcow2 registry.example.com/disks/node:1.36.4 \
    -a dev.prebake.disk.source.digest=sha256:… --artifact-type application/vnd.prebake.disk.v1`)
}

func newCopyCmd(a *app) *cobra.Command {
	return newCopyLikeCmd(a, "copy", "Copy an image and its referrers between layouts, the store and registries",
		`Copy copies the image or index SRC names, with all its referrers (the SBOM,
signatures, channel records, revocations) and cosign's sha256-<hex>.sig/.att
tags, to DST, between any of: the local store, OCI layouts and registries.

Blobs move in parallel (--jobs) as stored, never recompressed; blobs DST
already has are skipped; within one registry they are mounted across
repositories; DST's tag is written last. A registry or store DST without a
tag gets "latest"; an oci: layout without a tag gets the source's tag.`,
		`  # mirror a released image (and its signatures) to another registry
  prebake copy registry.example.com/nodes/k8s@sha256:… mirror.example.com/nodes/k8s:1.36.4

  # export to an OCI layout directory for an air-gapped site
  prebake copy registry.example.com/nodes/k8s:1.36.4 oci:./k8s-1.36.4`)
}

func newCopyLikeCmd(a *app, use, short, long, example string) *cobra.Command {
	var (
		rf           registryFlags
		asJSON       bool
		artifactType string
		annotations  []string
	)
	cmd := &cobra.Command{
		Use:     use + " SRC DST",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if use == "push" && isRegularFile(args[0]) {
				return pushFiles(a, cmd, args[:len(args)-1], args[len(args)-1], artifactType, annotations, rf, asJSON)
			}
			if len(args) != 2 {
				return fmt.Errorf("%s takes SRC and DST (%d arguments given)", use, len(args))
			}
			src, err := registry.ParseReference(args[0])
			if err != nil {
				return err
			}
			dst, err := registry.ParseReference(args[1])
			if err != nil {
				return err
			}
			o, done := rf.progressOptions(a)
			defer done()
			res, err := registry.Copy(cmd.Context(), src, dst, o)
			done()
			if err != nil {
				return err
			}
			out := copyOutput{
				Source: src.String(), Destination: dst.WithDigest(res.Descriptor.Digest.String()).String(),
				Digest: res.Descriptor.Digest.String(), Manifests: res.Manifests, Blobs: res.Blobs,
				Uploaded: res.Uploaded, Skipped: res.Skipped, Mounted: res.BlobsMounted,
			}
			for _, r := range res.Referrers {
				out.Referrers = append(out.Referrers, r.Digest.String())
			}
			if asJSON {
				return writeJSON(a, out)
			}
			fmt.Fprintf(a.Out, "%s %s\n", dst, res.Descriptor.Digest)
			// The summary is a result, printed with -q too (on stderr, so
			// stdout stays "DST DIGEST").
			fmt.Fprintf(a.Err, "%s; %d manifests, %d referrers\n", res.Summary(), res.Manifests, len(res.Referrers))
			return nil
		},
	}
	rf.register(cmd, true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	if use == "push" {
		cmd.Use = "push SRC DST | push FILE... DST"
		cmd.Args = cobra.MinimumNArgs(2)
		cmd.Long += `

With files instead of an image (push FILE... DST), the files are published as
one OCI 1.1 artifact, one layer per file, named by --artifact-type (default
for .qcow2, .raw, .img and .vmdk files: ` + disk.ArtifactType + `, each
layer with its disk format's media type). Each file is hashed once and checked
again while it is uploaded.`
		cmd.Flags().StringVar(&artifactType, "artifact-type", "", "with FILE arguments: the artifact's type (default "+disk.ArtifactType+" for disk files)")
		cmd.Flags().StringArrayVarP(&annotations, "annotation", "a", nil, "with FILE arguments: manifest annotation KEY=VALUE (repeatable)")
	}
	return cmd
}

func isRegularFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// pushFiles publishes files as one artifact at dst.
func pushFiles(a *app, cmd *cobra.Command, paths []string, dst, artifactType string, annotations []string, rf registryFlags, asJSON bool) error {
	ref, err := registry.ParseReference(dst)
	if err != nil {
		return err
	}
	ann, err := parseKeyValues("-a", "KEY=VALUE", annotations, false)
	if err != nil {
		return err
	}
	disks := true
	for _, p := range paths {
		if !isRegularFile(p) {
			return fmt.Errorf("%s: not a regular file (push takes one image reference, or files)", p)
		}
		if disk.FileFormat(p) == "" {
			disks = false
		}
	}
	if artifactType == "" {
		if !disks {
			return fmt.Errorf("--artifact-type is required for files that are not disks (.qcow2, .raw, .img, .vmdk)")
		}
		artifactType = disk.ArtifactType
	}
	var files []registry.File
	for _, p := range paths {
		f := registry.File{Path: p}
		if format := disk.FileFormat(p); format != "" && artifactType == disk.ArtifactType {
			f = disk.PublishedFile(p, format)
		}
		files = append(files, f)
	}
	img, err := registry.FileArtifact(artifactType, files, ann)
	if err != nil {
		return err
	}
	o, done := rf.progressOptions(a)
	defer done()
	desc, err := registry.Write(cmd.Context(), ref, img, nil, o)
	done()
	if err != nil {
		return fmt.Errorf("pushing to %s: %w", ref, err)
	}
	pushed := ref.WithDigest(desc.Digest.String()).String()
	if asJSON {
		return writeJSON(a, map[string]any{"destination": pushed, "digest": desc.Digest.String(), "artifactType": artifactType, "files": len(files)})
	}
	fmt.Fprintf(a.Out, "%s %s\n", ref, desc.Digest)
	return nil
}
