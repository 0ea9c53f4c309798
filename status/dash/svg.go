package dash

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The plots are SVG drawn here, on the server: no script, no chart
// library, the same bytes for the same values.

// bar is one bar of a bar chart.
type bar struct {
	Label string  // under the bar (a day of the month)
	Value float64 // its height, in the chart's unit
	Title string  // the tooltip: the exact figure
}

// barChart draws bars scaled to the largest of them or limit (a budget
// line, drawn dashed when > 0).
func barChart(id string, bars []bar, limit float64, aria string) template.HTML {
	const w, h, pad = 620.0, 160.0, 18.0
	top := limit
	for _, b := range bars {
		top = math.Max(top, b.Value)
	}
	if top <= 0 {
		top = 1
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg id="%s" class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" preserveAspectRatio="none">`,
		html.EscapeString(id), w, h+pad, html.EscapeString(aria))
	fmt.Fprintf(&sb, `<line x1="0" y1="%.1f" x2="%.0f" y2="%.1f" class="axis"/>`, h, w, h)
	n := max(len(bars), 1)
	step := w / float64(n)
	for i, b := range bars {
		bh := b.Value / top * (h - 4)
		x := float64(i)*step + step*0.15
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="used"><title>%s</title></rect>`,
			x, h-bh, step*0.7, bh, html.EscapeString(b.Title))
		if n <= 31 && (i%max(1, n/10) == 0 || i == n-1) {
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.0f" class="tick">%s</text>`, x, h+pad-4, html.EscapeString(b.Label))
		}
	}
	fmt.Fprintf(&sb, `<text x="%.0f" y="12" class="tick end">%s</text>`, w, html.EscapeString("max "+hoursText(top)))
	if limit > 0 {
		y := h - limit/top*(h-4)
		fmt.Fprintf(&sb, `<line x1="0" y1="%.1f" x2="%.0f" y2="%.1f" class="limit"><title>%s</title></line>`, y, w, y, html.EscapeString(fmt.Sprintf("budget %s", hoursText(limit))))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// series is one line of a line chart: values in percent (NaN: unknown).
type series struct {
	Name   string
	Class  string
	Values []float64
}

// lineChart draws percent series over the same times, left to right,
// with the first and last time under them.
func lineChart(id string, ss []series, from, to, aria string) template.HTML {
	const w, h, pad = 620.0, 140.0, 18.0
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg id="%s" class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" preserveAspectRatio="none">`,
		html.EscapeString(id), w, h+pad, html.EscapeString(aria))
	for _, p := range []float64{0, 50, 100} {
		y := h - p/100*(h-4)
		fmt.Fprintf(&sb, `<line x1="0" y1="%.1f" x2="%.0f" y2="%.1f" class="grid"/>`, y, w, y)
	}
	for _, s := range ss {
		n := len(s.Values)
		if n == 0 {
			continue
		}
		var pts []string
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			y := h - math.Min(math.Max(v, 0), 100)/100*(h-4)
			if n == 1 { // one reading: a level line across
				pts = append(pts, fmt.Sprintf("0,%.1f", y), fmt.Sprintf("%.0f,%.1f", w, y))
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", float64(i)/float64(n-1)*w, y))
		}
		fmt.Fprintf(&sb, `<polyline points="%s" class="%s"><title>%s</title></polyline>`, strings.Join(pts, " "), html.EscapeString(s.Class), html.EscapeString(s.Name))
	}
	fmt.Fprintf(&sb, `<text x="0" y="%.0f" class="tick">%s</text><text x="%.0f" y="%.0f" class="tick end">%s</text>`,
		h+pad-4, html.EscapeString(from), w, h+pad-4, html.EscapeString(to))
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// hoursText writes GPU-hours for people: one decimal from 10 up, two
// from 1, three below (3.6 GPU-seconds).
func hoursText(h float64) string {
	switch {
	case h >= 10:
		return strconv.FormatFloat(math.Round(h*10)/10, 'f', -1, 64)
	case h >= 1:
		return fmt.Sprintf("%.2f", h)
	}
	return fmt.Sprintf("%.3f", h)
}
