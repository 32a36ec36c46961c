package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/prebake/prebake/internal/progress"
)

// newProgress returns the progress sink for a command: nil with --quiet, a
// one-line live display on a terminal, plain log lines otherwise.
func (a *app) newProgress() (progress.Func, func()) {
	if a.quiet {
		return nil, func() {}
	}
	if isTerminal(a.Err) {
		d := &liveDisplay{w: a.Err, tasks: map[string]progress.Event{}}
		return d.report, d.done
	}
	var mu sync.Mutex
	return func(e progress.Event) {
		if !e.Finished || e.Op == "write" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		verb := map[string]string{"download": "downloaded", "compress": "built layer", "write": "wrote", "upload": "uploaded", "cache": "layer from the registry cache:"}[e.Op]
		if verb == "" {
			verb = e.Op
		}
		if e.Skipped {
			fmt.Fprintf(a.Err, "%s %s (cached)\n", verb, e.Name)
			return
		}
		fmt.Fprintf(a.Err, "%s %s (%s)\n", verb, e.Name, progress.Bytes(e.Done))
	}, func() {}
}

// liveDisplay redraws one status line with the totals of running tasks.
type liveDisplay struct {
	mu    sync.Mutex
	w     io.Writer
	tasks map[string]progress.Event
	last  time.Time
	width int
}

func (d *liveDisplay) report(e progress.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := e.Op + " " + e.Name
	if e.Finished {
		delete(d.tasks, key)
	} else {
		d.tasks[key] = e
	}
	if !e.Finished && time.Since(d.last) < 100*time.Millisecond {
		return
	}
	d.last = time.Now()
	ops := map[string][2]int64{}
	for _, t := range d.tasks {
		v := ops[t.Op]
		v[0] += t.Done
		v[1]++
		ops[t.Op] = v
	}
	var parts []string
	for _, op := range []string{"download", "compress", "write", "upload"} {
		if v, ok := ops[op]; ok {
			parts = append(parts, fmt.Sprintf("%s %d: %s", op, v[1], progress.Bytes(v[0])))
		}
	}
	line := strings.Join(parts, " | ")
	pad := ""
	if n := d.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	d.width = len(line)
	fmt.Fprintf(d.w, "\r%s%s", line, pad)
}

func (d *liveDisplay) done() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.width > 0 {
		fmt.Fprintf(d.w, "\r%s\r", strings.Repeat(" ", d.width))
	}
}
