package report

import (
	"fmt"
	"math"
	"strings"
)

// Ratio formats ours/theirs as "0.52x", or "n/a" when either side is
// missing or zero (a ratio against nothing means nothing).
func Ratio(ours, theirs float64) string {
	if ours == 0 || theirs == 0 || math.IsNaN(ours) || math.IsNaN(theirs) {
		return "n/a"
	}
	r := ours / theirs
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0fx", r)
	case r >= 1:
		return fmt.Sprintf("%.2fx", r)
	default:
		return fmt.Sprintf("%.3gx", r)
	}
}

// Table renders a markdown table; cells are escaped for "|".
func Table(header []string, rows [][]string) string {
	var b strings.Builder
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	line := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + esc(c) + " |")
		}
		b.WriteString("\n")
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	b.WriteString("|" + strings.Join(sep, "|") + "|\n")
	for _, r := range rows {
		for len(r) < len(header) {
			r = append(r, "")
		}
		line(r)
	}
	return b.String()
}

// num formats a measurement; 0 stands for "not measured".
func num(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
