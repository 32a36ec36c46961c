package cloudinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/prebake/prebake/internal/safepath"
)

// maxRefFile caps the size of a file a spec names (CA, token, file content).
const maxRefFile = 1 << 20

// Load reads the node spec file at path (a NodeConfig or a NodeConfigList,
// possibly several YAML documents), reads the files it names (caCertFile,
// bootstrapTokenFile, files[].contentFile; relative to the spec's directory
// and contained in it, symlinks followed),
// and validates every node. All problems, each with file:line:column, come
// back together in one *SpecError.
func Load(path string) ([]*NodeConfig, error) {
	return load(path, false)
}

// LoadInit is Load for the first control plane (prebake render --init): the
// spec needs no bootstrap token or CA pin, and may name the CA's key
// (cluster.caKeyFile). Render it with Options.Init.
func LoadInit(path string) ([]*NodeConfig, error) {
	return load(path, true)
}

func load(path string, init bool) ([]*NodeConfig, error) {
	data, err := readLimited(path, MaxSpecSize)
	if err != nil {
		return nil, &SpecError{Problems: []Problem{{File: path, Err: ErrSyntax, Detail: err.Error()}}}
	}
	specs, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	cache := map[string]fileResult{}
	var all []Problem
	// Problems shared by the nodes of one list (cluster, files) are
	// reported once.
	reported := map[string]bool{}
	for _, nc := range specs {
		nc.source.dir = dir
		nc.init = init
		ps := &problems{src: nc.source}
		loadRefs(nc, dir, cache, ps)
		validate(nc, ps)
		for _, p := range ps.list {
			key := p.Error()
			if reported[key] {
				continue
			}
			reported[key] = true
			all = append(all, p)
		}
	}
	if len(all) > 0 {
		return nil, &SpecError{Problems: all}
	}
	return specs, nil
}

type fileResult struct {
	data []byte
	err  error
}

// readRef reads a file the spec names. It must stay inside the spec's
// directory after every symlink is followed (internal/safepath): an absolute
// name, "..", or a symlinked file or folder pointing elsewhere is refused,
// saying where it pointed, so a spec cannot pull host files such as
// /etc/shadow into user-data.
func readRef(dir, name string, cache map[string]fileResult) ([]byte, error) {
	key := filepath.Join(dir, name)
	if r, ok := cache[key]; ok {
		return r.data, r.err
	}
	data, err := safepath.ReadFile(dir, name, maxRefFile)
	var esc *safepath.EscapeError
	switch {
	case errors.As(err, &esc) && esc.Absolute:
		err = fmt.Errorf("%w (files a spec names must stay inside its directory)", esc)
	case errors.As(err, &esc):
		err = fmt.Errorf("%q resolves to %s, outside the spec's directory %s (files a spec names must stay inside it)", name, esc.Target, dir)
	case errors.Is(err, fs.ErrNotExist):
		err = fmt.Errorf("%s does not exist", key)
	case errors.Is(err, safepath.ErrTooLarge):
		err = fmt.Errorf("%s is over the %d byte limit", key, maxRefFile)
	}
	cache[key] = fileResult{data, err}
	return data, err
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist", p)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d byte limit", p, fi.Size(), limit)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return data, nil
}

// loadRefs reads the files nc names into its fields.
func loadRefs(nc *NodeConfig, dir string, cache map[string]fileResult, ps *problems) {
	c := &nc.Cluster
	if c.CACertFile != "" && len(c.CACert) == 0 {
		data, err := readRef(dir, c.CACertFile, cache)
		if err != nil {
			ps.add("cluster.caCertFile", ErrCAFile, "%v", err)
		} else {
			c.CACert = data
		}
	}
	if c.CAKeyFile != "" && len(c.CAKey) == 0 {
		data, err := readRef(dir, c.CAKeyFile, cache)
		if err != nil {
			ps.add("cluster.caKeyFile", ErrCAKey, "%v", err)
		} else {
			c.CAKey = data
		}
	}
	if c.BootstrapTokenFile != "" && c.tokenFromFile == "" {
		if c.BootstrapToken != "" {
			ps.add("cluster.bootstrapTokenFile", ErrInvalidValue, "give bootstrapToken or bootstrapTokenFile, not both")
			return
		}
		data, err := readRef(dir, c.BootstrapTokenFile, cache)
		if err != nil {
			ps.add("cluster.bootstrapTokenFile", ErrTokenFile, "%v", err)
		} else {
			c.BootstrapToken = strings.TrimSpace(string(data))
			c.tokenFromFile = c.BootstrapTokenFile
		}
	}
	if len(nc.Files) > 0 {
		files := make([]File, len(nc.Files))
		copy(files, nc.Files)
		for i := range files {
			f := &files[i]
			if f.ContentFile == "" || f.loaded || f.Content != "" {
				continue
			}
			data, err := readRef(dir, f.ContentFile, cache)
			if err != nil {
				ps.add(fmt.Sprintf("files[%d].contentFile", i), ErrInvalidValue, "%v", err)
				continue
			}
			f.Content, f.loaded = string(data), true
		}
		nc.Files = files
	}
}
