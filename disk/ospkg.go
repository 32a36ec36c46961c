package disk

import (
	"context"
	"errors"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/ospkg"
)

// checkOSPackages checks that the base provides the packages the image
// declares. A directory base is read in place; otherwise the base's layers
// are searched in order and the last package database found wins (an
// image base's later layers replace the file).
func checkOSPackages(ctx context.Context, base string, layers []v1.Layer, want []string) error {
	if fi, err := os.Stat(base); err == nil && fi.IsDir() {
		db, err := ospkg.Open(base)
		if err != nil {
			return err
		}
		return db.Check(want)
	}
	var (
		db      *ospkg.DB
		lastErr error
	)
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := base
		if len(layers) > 1 {
			name = fmt.Sprintf("%s (layer %d)", base, i+1)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d, err := ospkg.ReadTar(rc, name)
		rc.Close()
		switch {
		case err == nil:
			db, lastErr = d, nil
		case errors.Is(err, ospkg.ErrNoDatabase):
			if db == nil && lastErr == nil {
				lastErr = err
			}
		default:
			db, lastErr = nil, err
		}
	}
	if lastErr != nil {
		if errors.Is(lastErr, ospkg.ErrNoDatabase) {
			return fmt.Errorf("%s: %w: expected /%s (dpkg) or an RPM database", base, ospkg.ErrNoDatabase, ospkg.DpkgStatus)
		}
		return lastErr
	}
	if db == nil {
		return fmt.Errorf("%s: %w", base, ospkg.ErrNoDatabase)
	}
	return db.Check(want)
}
