package loadbench

import (
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartWidth = 960
	labelWidth = 300 // right edge of the row labels
	plotWidth  = 470
	rowHeight  = 22
	barHeight  = 14
	listBar    = 9
	panelGap   = 48
)

var listColors = []string{"#8fb8de", "#4a7fb5", "#1d3f6e", "#0b1f3a"}

// writeChart draws the run as an SVG: single checks per second relative
// to the floor, bulk checks per second relative to the SQL's single
// checks, and the p50 of every list by size on a log scale.
func writeChart(path, title string, results []result) error {
	refs := referencesOf(results)
	var body strings.Builder
	y := 40
	y = ratioPanel(&body, y, "Single checks per second relative to the floor", rowsOf(results, kindCheck), refs.floor)
	y = ratioPanel(&body, y+panelGap, "Bulk checks per second relative to the SQL's single checks", rowsOf(results, kindBulk), refs.sql)
	y = listPanel(&body, y+panelGap, results)
	var svg strings.Builder
	fmt.Fprintf(&svg, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, y+20, chartWidth, y+20)
	svg.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&svg, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", esc(title))
	svg.WriteString(body.String())
	svg.WriteString("</svg>\n")
	if err := os.WriteFile(path, []byte(svg.String()), 0o644); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

func esc(s string) string { return html.EscapeString(s) }

func rowsOf(results []result, k kind) []result {
	var out []result
	for _, r := range results {
		if r.kind == k {
			out = append(out, r)
		}
	}
	return out
}

// ratioPanel draws one bar per row, its length the row's rate relative to
// base (longer is faster), with a dashed line at 1. Without a base (its
// system was not measured) the fastest row is the base.
func ratioPanel(b *strings.Builder, y int, title string, rows []result, base float64) int {
	if len(rows) == 0 {
		return y
	}
	if base == 0 {
		base = slices.MaxFunc(rows, func(a, b result) int { return cmpFloat(a.rate, b.rate) }).rate
		title += " (not measured; relative to the fastest)"
	}
	top := 1.0
	for _, r := range rows {
		top = math.Max(top, r.rate/base)
	}
	fmt.Fprintf(b, `<text x="10" y="%d" font-weight="bold">%s (longer is faster)</text>`+"\n", y, esc(title))
	y += 12
	plotTop := y
	for _, r := range rows {
		w := r.rate / base / top * plotWidth
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelWidth-8, y+barHeight-2, esc(r.system+" · "+r.measure))
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelWidth, y, w, barHeight, barColor(r))
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s× · %s</text>`+"\n", float64(labelWidth)+w+4, y+barHeight-2, ratioText(r.rate/base), esc(rateText(r)))
		y += rowHeight
	}
	one := float64(labelWidth) + plotWidth/top
	fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c0392b" stroke-dasharray="4 3"/>`+"\n", one, plotTop-4, one, y)
	return y
}

func barColor(r result) string {
	switch {
	case r.system == string(SystemFloor):
		return "#7f8c8d"
	case r.system == string(SystemSQL):
		return "#d35400"
	case strings.Contains(r.system, "index=on"):
		return "#2c7fb8"
	}
	return "#9ecae1"
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// listPanel draws, per system, one bar per list size: the p50 of reading
// the whole list, on a log scale from the decade below the fastest to the
// decade above the slowest.
func listPanel(b *strings.Builder, y int, results []result) int {
	var systems []string
	var sizes []int
	p50 := map[string]map[int]time.Duration{}
	for _, r := range results {
		if r.kind != kindList || r.p50 <= 0 {
			continue
		}
		if p50[r.system] == nil {
			p50[r.system] = map[int]time.Duration{}
			systems = append(systems, r.system)
		}
		p50[r.system][r.listSize] = r.p50
		if !slices.Contains(sizes, r.listSize) {
			sizes = append(sizes, r.listSize)
		}
	}
	if len(systems) == 0 {
		return y
	}
	slices.Sort(sizes)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, bySize := range p50 {
		for _, d := range bySize {
			ms := float64(d) / float64(time.Millisecond)
			lo, hi = math.Min(lo, ms), math.Max(hi, ms)
		}
	}
	lo, hi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if hi == lo {
		hi++
	}
	at := func(d time.Duration) float64 {
		return (math.Log10(float64(d)/float64(time.Millisecond)) - lo) / (hi - lo) * plotWidth
	}
	fmt.Fprintf(b, `<text x="10" y="%d" font-weight="bold">Whole list, p50 (log scale, shorter is faster)</text>`+"\n", y)
	y += 16
	for i, size := range sizes {
		x := labelWidth + i*130
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s companies</text>`+"\n",
			x, y-9, listColors[i%len(listColors)], x+14, y, thousands(int64(size)))
	}
	y += 10
	plotTop := y
	for _, sys := range systems {
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelWidth-8, y+len(sizes)*listBar/2+4, esc(sys))
		for i, size := range sizes {
			if d, ok := p50[sys][size]; ok {
				w := math.Max(at(d), 1)
				fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelWidth, y+i*listBar, w, listBar-1, listColors[i%len(listColors)])
				fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="9">%s</text>`+"\n", float64(labelWidth)+w+3, y+i*listBar+listBar-1, durationText(d))
			}
		}
		y += len(sizes)*listBar + 8
	}
	for e := lo; e <= hi; e++ {
		x := float64(labelWidth) + (e-lo)/(hi-lo)*plotWidth
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#bbb" stroke-width="0.5"/>`+"\n", x, plotTop-2, x, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>`+"\n", x, y+12, decadeText(e))
	}
	return y + 12
}

// decadeText labels the tick at 10^e milliseconds.
func decadeText(e float64) string {
	if e >= 3 {
		return strconv.FormatFloat(math.Pow(10, e-3), 'f', -1, 64) + " s"
	}
	return strconv.FormatFloat(math.Pow(10, e), 'f', -1, 64) + " ms"
}
