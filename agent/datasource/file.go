package datasource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// File reads user-data from a local file (an image that carries its own,
// or a provisioner that drops one in place).
type File struct{ Path string }

func (f File) Name() string { return "file" }

func (f File) UserData(ctx context.Context) ([]byte, error) {
	fh, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNotFound, f.Path)
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Path, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s: over %d bytes", f.Path, MaxSize)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrNoUserData, f.Path)
	}
	return b, nil
}
