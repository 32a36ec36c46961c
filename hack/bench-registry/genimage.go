//go:build ignore

// genimage writes an OCI layout holding one image of random, gzip-compressed
// layers, for hack/bench-registry.sh:
//
//	go run hack/bench-registry/genimage.go DIR TOTAL_MB LAYERS
//
// The layout's index.json tags the image "bench". Random bytes do not
// compress, so the layers are about TOTAL_MB in all.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/klauspost/compress/gzip"
)

type desc struct {
	MediaType string            `json:"mediaType"`
	Digest    string            `json:"digest"`
	Size      int64             `json:"size"`
	Annots    map[string]string `json:"annotations,omitempty"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: genimage DIR TOTAL_MB LAYERS")
		os.Exit(2)
	}
	dir := os.Args[1]
	total, _ := strconv.Atoi(os.Args[2])
	n, _ := strconv.Atoi(os.Args[3])
	blobs := filepath.Join(dir, "blobs", "sha256")
	must(os.MkdirAll(blobs, 0o755))
	rng := rand.NewChaCha8([32]byte{42})
	var layers []desc
	var diffIDs []string
	per := int64(total) << 20 / int64(n)
	for i := range n {
		tmp, err := os.CreateTemp(blobs, ".layer-*")
		must(err)
		ch := sha256.New()
		uh := sha256.New()
		cw := &counter{w: io.MultiWriter(tmp, ch)}
		zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
		must(err)
		tw := tar.NewWriter(io.MultiWriter(zw, uh))
		must(tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/layer%d.bin", i), Mode: 0o644, Size: per, Typeflag: tar.TypeReg}))
		_, err = io.CopyN(tw, rng, per)
		must(err)
		must(tw.Close())
		must(zw.Close())
		must(tmp.Close())
		d := hexOf(ch)
		must(os.Rename(tmp.Name(), filepath.Join(blobs, d)))
		layers = append(layers, desc{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: "sha256:" + d, Size: cw.n})
		diffIDs = append(diffIDs, "sha256:"+hexOf(uh))
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cd := put(blobs, "application/vnd.oci.image.config.v1+json", cfg)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": cd, "layers": layers,
	})
	md := put(blobs, "application/vnd.oci.image.manifest.v1+json", man)
	md.Annots = map[string]string{"org.opencontainers.image.ref.name": "bench"}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []desc{md}})
	must(os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644))
	must(os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	fmt.Println(md.Digest)
}

func put(blobs, mt string, b []byte) desc {
	s := sha256.Sum256(b)
	d := hex.EncodeToString(s[:])
	must(os.WriteFile(filepath.Join(blobs, d), b, 0o644))
	return desc{MediaType: mt, Digest: "sha256:" + d, Size: int64(len(b))}
}

func hexOf(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "genimage:", err)
		os.Exit(1)
	}
}
