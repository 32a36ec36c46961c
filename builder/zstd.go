package builder

import (
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstdFrameSize is how much uncompressed input goes into one zstd frame.
// A layer is a sequence of independent frames (a valid zstd stream: decoders
// read concatenated frames), so that the frames of one large component are
// compressed on all cores. The boundaries depend on the input only, and each
// frame is compressed alone, so the bytes do not depend on the core count.
const zstdFrameSize = 8 << 20

// zstdFormat names the framing in layer cache keys (layerKey).
const zstdFormat = "zstd-frames-8MiB/1"

// zstdEncoder is shared: EncodeAll may be called concurrently, each call on
// one goroutine.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithZeroFrames(true))
})

// frameWriter compresses what is written to it into zstd frames of
// zstdFrameSize input bytes each, up to GOMAXPROCS frames at once, and writes
// them to w in order.
type frameWriter struct {
	w       io.Writer
	enc     *zstd.Encoder
	buf     []byte
	order   chan *frame // frames in input order, bounded: the back-pressure
	sem     chan struct{}
	written chan struct{} // closed when the writer goroutine ends
	// Spent input and output buffers, reused: a fresh 8 MiB buffer costs
	// a page fault per 4 KiB (and sync.Pool drops them at every GC).
	freeIn, freeOut chan []byte
	mu              sync.Mutex
	err             error
	frames          int
}

type frame struct {
	in, out []byte
	ready   chan struct{}
}

func newFrameWriter(w io.Writer) (*frameWriter, error) {
	enc, err := zstdEncoder()
	if err != nil {
		return nil, err
	}
	n := runtime.GOMAXPROCS(0)
	fw := &frameWriter{w: w, enc: enc, order: make(chan *frame, n), sem: make(chan struct{}, n), written: make(chan struct{}),
		freeIn: make(chan []byte, 2*n+2), freeOut: make(chan []byte, 2*n+2)}
	go fw.writeFrames()
	return fw, nil
}

func (fw *frameWriter) writeFrames() {
	defer close(fw.written)
	for f := range fw.order {
		<-f.ready
		if fw.failed() == nil {
			if _, err := fw.w.Write(f.out); err != nil {
				fw.fail(err)
			}
		}
		put(fw.freeOut, f.out)
		f.out = nil
	}
}

func (fw *frameWriter) fail(err error) {
	fw.mu.Lock()
	if fw.err == nil {
		fw.err = err
	}
	fw.mu.Unlock()
}

func (fw *frameWriter) failed() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.err
}

func (fw *frameWriter) Write(p []byte) (int, error) {
	if err := fw.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if fw.buf == nil {
			fw.buf = get(fw.freeIn, zstdFrameSize)
		}
		k := min(len(p), zstdFrameSize-len(fw.buf))
		fw.buf = append(fw.buf, p[:k]...)
		p = p[k:]
		if len(fw.buf) == zstdFrameSize {
			fw.submit()
		}
	}
	return n, nil
}

// submit compresses the buffered input as the next frame.
func (fw *frameWriter) submit() {
	f := &frame{in: fw.buf, ready: make(chan struct{})}
	fw.buf = nil
	fw.frames++
	fw.order <- f
	fw.sem <- struct{}{}
	go func() {
		f.out = fw.enc.EncodeAll(f.in, get(fw.freeOut, zstdFrameSize/2))
		put(fw.freeIn, f.in)
		f.in = nil
		<-fw.sem
		close(f.ready)
	}()
}

// Close compresses the rest (an empty input is one empty frame) and waits
// until every frame is written.
func (fw *frameWriter) Close() error {
	if len(fw.buf) > 0 || fw.frames == 0 {
		fw.submit()
	}
	close(fw.order)
	<-fw.written
	return fw.failed()
}

// get takes a spent buffer from free, or makes one of capacity size.
func get(free chan []byte, size int) []byte {
	select {
	case b := <-free:
		return b[:0]
	default:
		return make([]byte, 0, size)
	}
}

// put gives b back to free unless free is full.
func put(free chan []byte, b []byte) {
	select {
	case free <- b:
	default:
	}
}
