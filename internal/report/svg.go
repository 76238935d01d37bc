package report

import (
	"fmt"
	"html/template"
	"strings"
)

// The report's charts are inline SVG written here: no JavaScript and no
// external resources, so they render in mail clients and in the stored
// HTML alike. Only numbers and fixed words go into the markup.

// Timeline chart geometry (user units; the SVG scales to its container).
const (
	tlWidth, tlHeight = 720, 220
	tlLeft, tlRight   = 56, 12
	tlTop, tlBottom   = 28, 28
)

// series colours, used by the chart and its legend.
var tlSeries = []struct {
	name, color string
	value       func(HourStats) uint64
}{
	{"blocked", "#cf222e", func(h HourStats) uint64 { return h.Blocked }},
	{"errors", "#bc4c00", func(h HourStats) uint64 { return h.Errors }},
	{"fail-open", "#8250df", func(h HourStats) uint64 { return h.FailedOpen }},
	{"shadow", "#6e7781", func(h HourStats) uint64 { return h.Shadow }},
}

// timelineSVG draws requests per hour as bars and blocks, errors,
// fail-open and shadow as lines on the same scale.
func timelineSVG(hours []HourStats) template.HTML {
	if len(hours) == 0 {
		return ""
	}
	var peak uint64 = 1
	for _, h := range hours {
		peak = max(peak, h.Requests)
		for _, s := range tlSeries {
			peak = max(peak, s.value(h))
		}
	}
	plotW := float64(tlWidth - tlLeft - tlRight)
	plotH := float64(tlHeight - tlTop - tlBottom)
	slot := plotW / float64(len(hours))
	y := func(v uint64) float64 { return float64(tlTop) + plotH - plotH*float64(v)/float64(peak) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="Requests, blocks, errors and fail-open per hour" font-family="sans-serif" font-size="11">`,
		tlWidth, tlHeight, tlWidth, tlHeight)
	b.WriteString(`<title>Requests, blocks, errors and fail-open per hour</title>`)
	// Grid: 0, half and peak.
	for _, f := range []float64{0, 0.5, 1} {
		v := uint64(float64(peak) * f)
		yy := y(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#d0d7de" stroke-width="1"/>`, tlLeft, yy, tlWidth-tlRight, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#57606a">%s</text>`, tlLeft-6, yy+4, compact(v))
	}
	// Requests as bars.
	for i, h := range hours {
		x := float64(tlLeft) + float64(i)*slot
		top := y(h.Requests)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#b6e3ff"><title>%02d:00 %d requests</title></rect>`,
			x+1, top, max(slot-2, 1), float64(tlTop)+plotH-top, h.Hour, h.Requests)
		if h.Hour%3 == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#57606a">%02d</text>`, x+slot/2, tlHeight-tlBottom+16, h.Hour)
		}
	}
	// The other series as lines through the slot centres.
	for _, s := range tlSeries {
		var pts []string
		var any bool
		for i, h := range hours {
			v := s.value(h)
			any = any || v > 0
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", float64(tlLeft)+float64(i)*slot+slot/2, y(v)))
		}
		if !any {
			continue
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), s.color)
	}
	// Legend.
	x := tlLeft
	fmt.Fprintf(&b, `<rect x="%d" y="8" width="10" height="10" fill="#b6e3ff"/><text x="%d" y="17">requests</text>`, x, x+14)
	x += 80
	for _, s := range tlSeries {
		fmt.Fprintf(&b, `<line x1="%d" y1="13" x2="%d" y2="13" stroke="%s" stroke-width="2"/><text x="%d" y="17">%s</text>`, x, x+12, s.color, x+16, s.name)
		x += 24 + 7*len(s.name)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and fixed words only
}

// sparkSVG draws a small bar chart of per-hour counts (a client's blocks).
func sparkSVG(counts []uint64) template.HTML {
	if len(counts) == 0 {
		return ""
	}
	const w, h = 96, 20
	var peak uint64 = 1
	for _, c := range counts {
		peak = max(peak, c)
	}
	slot := float64(w) / float64(len(counts))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="blocks per hour">`, w, h, w, h)
	fmt.Fprintf(&b, `<line x1="0" y1="%d" x2="%d" y2="%d" stroke="#d0d7de" stroke-width="1"/>`, h-1, w, h-1)
	for i, c := range counts {
		if c == 0 {
			continue
		}
		bh := max(float64(h-2)*float64(c)/float64(peak), 1)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#cf222e"><title>%02d:00 %d</title></rect>`,
			float64(i)*slot, float64(h-1)-bh, max(slot-0.5, 0.5), bh, i, c)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers only
}

// sparkText is the same as text for Markdown: one block character per hour.
func sparkText(counts []uint64) string {
	const levels = "▁▂▃▄▅▆▇█"
	blocks := []rune(levels)
	var peak uint64
	for _, c := range counts {
		peak = max(peak, c)
	}
	var b strings.Builder
	for _, c := range counts {
		switch {
		case c == 0:
			b.WriteRune('·')
		default:
			b.WriteRune(blocks[min(int(float64(c)/float64(peak)*float64(len(blocks)-1)+0.5), len(blocks)-1)])
		}
	}
	return b.String()
}

// compact writes 1234 as 1.2k.
func compact(v uint64) string {
	switch {
	case v >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(v)/1e6)
	case v >= 10_000:
		return fmt.Sprintf("%.0fk", float64(v)/1e3)
	case v >= 1_000:
		return fmt.Sprintf("%.1fk", float64(v)/1e3)
	}
	return fmt.Sprint(v)
}

// series extracts one measure of the timeline for sparkText.
func series(hours []HourStats, f func(HourStats) uint64) []uint64 {
	out := make([]uint64, len(hours))
	for i, h := range hours {
		out[i] = f(h)
	}
	return out
}
