package archive

import (
	"compress/flate"
	"io"
)

func newFlate(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestCompression) }
