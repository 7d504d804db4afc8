package bench

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The charts are plain SVG written here: no plotting dependency.

type xy struct{ X, Y float64 }

type line struct {
	Name   string
	Points []xy
}

type tick struct {
	V     float64
	Label string
}

type chart struct {
	Title, XLabel, YLabel string
	Lines                 []line
	XTicks                []tick // nil: automatic
	LogY                  bool
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

func niceTicks(lo, hi float64, n int) []tick {
	if hi <= lo {
		hi = lo + 1
	}
	step := math.Pow(10, math.Floor(math.Log10((hi-lo)/float64(n))))
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= float64(n) {
			step *= m
			break
		}
	}
	var ts []tick
	for v := math.Ceil(lo/step) * step; v <= hi+step/1e6; v += step {
		ts = append(ts, tick{v, num(v)})
	}
	return ts
}

func (c chart) svg() string {
	const W, H, L, R, T, B = 720.0, 420.0, 70.0, 180.0, 40.0, 50.0
	pw, ph := W-L-R, H-T-B
	minX, maxX, maxY := math.Inf(1), math.Inf(-1), 0.0
	minY := math.Inf(1)
	for _, l := range c.Lines {
		for _, p := range l.Points {
			minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
			maxY = math.Max(maxY, p.Y)
			if p.Y > 0 {
				minY = math.Min(minY, p.Y)
			}
		}
	}
	if math.IsInf(minX, 1) {
		minX, maxX, maxY, minY = 0, 1, 1, 1
	}
	if maxX == minX {
		maxX = minX + 1
	}
	fy := func(v float64) float64 { return v }
	y0, y1 := 0.0, maxY*1.05
	if y1 == 0 {
		y1 = 1
	}
	var yt []tick
	if c.LogY {
		fy = func(v float64) float64 { return math.Log10(math.Max(v, minY/2)) }
		y0, y1 = math.Floor(math.Log10(minY/2)), math.Ceil(math.Log10(maxY*1.01))
		if y1 <= y0 {
			y1 = y0 + 1
		}
		for e := y0; e <= y1; e++ {
			yt = append(yt, tick{e, num(math.Pow(10, e))})
		}
	} else {
		yt = niceTicks(0, y1, 6)
	}
	px := func(x float64) float64 { return L + (x-minX)/(maxX-minX)*pw }
	py := func(y float64) float64 { return T + ph - (fy(y)-y0)/(y1-y0)*ph }
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	w(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	w(`<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", L, html.EscapeString(c.Title))
	for _, t := range yt {
		yy := T + ph - (t.V-y0)/(y1-y0)*ph
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", L, yy, L+pw, yy, L-6, yy+4, t.Label)
	}
	xt := c.XTicks
	if xt == nil {
		xt = niceTicks(minX, maxX, 8)
	}
	for _, t := range xt {
		if t.V < minX || t.V > maxX {
			continue
		}
		xx := px(t.V)
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", xx, T, xx, T+ph, xx, T+ph+16, html.EscapeString(t.Label))
	}
	w(`<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", L, T, pw, ph)
	w(`<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", L+pw/2, H-10, html.EscapeString(c.XLabel))
	w(`<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", T+ph/2, html.EscapeString(c.YLabel))
	for i, l := range c.Lines {
		col := palette[i%len(palette)]
		var pts []string
		for _, p := range l.Points {
			if c.LogY && p.Y <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.X), py(p.Y)))
		}
		w(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		ly := T + 14 + float64(i)*18
		w(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="3"/><text x="%.0f" y="%.0f">%s</text>`+"\n", L+pw+10, ly-4, L+pw+28, ly-4, col, L+pw+32, ly, html.EscapeString(l.Name))
	}
	w("</svg>\n")
	return b.String()
}

func (r *Report) throughputChart() string {
	c := chart{Title: "Throughput over time (payload, 100 ms samples)", XLabel: "seconds since the phase started", YLabel: "MB/s"}
	for _, s := range r.Series {
		l := line{Name: s.Name}
		for _, p := range s.Samples {
			l.Points = append(l.Points, xy{p.T, p.MBps})
		}
		c.Lines = append(c.Lines, l)
	}
	return c.svg()
}

// latencyChart plots latency against the quantile on a scale that opens up the
// tail: x = -log10(1-q).
func (r *Report) latencyChart() string {
	c := chart{Title: fmt.Sprintf("End-to-end latency at %d records/s", r.Latency.Rate), XLabel: "quantile", YLabel: "ms (log)", LogY: true}
	tx := func(q float64) float64 { return -math.Log10(math.Max(1-q, 1e-5)) }
	l := line{Name: "strata"}
	for _, p := range r.Latency.CDF {
		if p.Quantile >= 1 {
			continue
		}
		l.Points = append(l.Points, xy{tx(p.Quantile), p.Ms})
	}
	c.Lines = []line{l}
	for _, q := range []struct {
		v float64
		s string
	}{{0, "0"}, {0.9, "p90"}, {0.99, "p99"}, {0.999, "p99.9"}, {0.9999, "p99.99"}} {
		c.XTicks = append(c.XTicks, tick{tx(q.v), q.s})
	}
	return c.svg()
}

func (r *Report) costChart() string {
	c := chart{Title: fmt.Sprintf("Monthly cost of keeping %.0f GB/day by retention", r.Cost.Prices.IngestPerDayG), XLabel: "retention (days)", YLabel: "$ per month (log)", LogY: true}
	s3 := line{Name: "tiered (S3)"}
	disk := line{Name: fmt.Sprintf("local disks RF %d", r.Cost.Prices.DiskReplicas)}
	for _, p := range r.RetentionCurve {
		s3.Points = append(s3.Points, xy{p.Days, p.S3Dollars})
		disk.Points = append(disk.Points, xy{p.Days, p.RF3Dollars})
	}
	c.Lines = []line{s3, disk}
	return c.svg()
}
