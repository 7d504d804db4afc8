package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a bar on a terminal, or prints one line per step elsewhere.
type progress struct {
	w           io.Writer
	tty         bool
	total, done int
	start       time.Time
	last        string
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) step(name string) {
	if p == nil || p.w == nil {
		return
	}
	p.done = min(p.done+1, p.total)
	p.last = name
	p.draw()
}

func (p *progress) draw() {
	const width = 30
	filled := width * (p.done - 1) / max(p.total, 1)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	line := fmt.Sprintf("[%s] %2d/%d %5.0fs  %s", bar, p.done, p.total, time.Since(p.start).Seconds(), p.last)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) note(msg string) {
	if p == nil || p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, msg)
	if p.tty {
		p.draw()
	}
}

func (p *progress) finish() {
	if p == nil || p.w == nil {
		return
	}
	line := fmt.Sprintf("[%s] done in %.0fs", strings.Repeat("#", 30), time.Since(p.start).Seconds())
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}
