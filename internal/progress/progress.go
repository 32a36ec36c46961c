// Package progress carries progress events from the library packages to
// whoever displays them. Libraries report through a Func they were given and
// stay silent when it is nil; only internal/cli renders events.
package progress

import (
	"fmt"
	"io"
	"sync/atomic"
)

// Event is one progress update for a named piece of work.
type Event struct {
	Op       string // "download", "compress", "upload", …
	Name     string // what is being worked on (URL, component, digest)
	Done     int64  // bytes done so far
	Total    int64  // bytes expected; 0 when unknown
	Finished bool   // last event for this Name
	Skipped  bool   // finished without doing the work (cache hit, blob exists)
}

// Func receives events. It must be safe for concurrent use.
type Func func(Event)

// Report calls f with e when f is not nil.
func (f Func) Report(e Event) {
	if f != nil {
		f(e)
	}
}

// Reader wraps r so that every read reports the running byte count.
// With a nil Func it returns r unchanged.
func (f Func) Reader(r io.Reader, op, name string, total int64) io.Reader {
	if f == nil {
		return r
	}
	return &reader{r: r, f: f, op: op, name: name, total: total}
}

type reader struct {
	r     io.Reader
	f     Func
	op    string
	name  string
	total int64
	done  atomic.Int64
}

func (p *reader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.f(Event{Op: p.op, Name: p.name, Done: p.done.Add(int64(n)), Total: p.total})
	}
	return n, err
}

// Bytes formats n for people: "512 B", "1.5 KiB", "3.2 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
