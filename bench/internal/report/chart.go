package report

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/load"
)

var colors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // the store over RESP
}

// Charts writes, per workload, throughput against concurrency per system
// and the latency percentiles per system at concurrency latencyAt. It
// returns the file names, relative to dir.
func (r *Results) Charts(dir string, concs []int, latencyAt int) ([]string, error) {
	var files []string
	for _, w := range load.Workloads() {
		name := "throughput-" + w.Name + ".png"
		if ok, err := r.throughputChart(filepath.Join(dir, name), w, concs); err != nil {
			return files, err
		} else if ok {
			files = append(files, name)
		}
		name = fmt.Sprintf("latency-%s-c%d.png", w.Name, latencyAt)
		if ok, err := r.latencyChart(filepath.Join(dir, name), w, latencyAt); err != nil {
			return files, err
		} else if ok {
			files = append(files, name)
		}
	}
	return files, nil
}

func (r *Results) throughputChart(path string, w load.Workload, concs []int) (bool, error) {
	p := plot.New()
	p.Title.Text = w.Title + ": throughput"
	p.X.Label.Text = "concurrent clients"
	p.Y.Label.Text = "ops/s"
	p.Legend.Top = true
	any := false
	top := 0.0
	for si, s := range series {
		var pts plotter.XYs
		for _, c := range concs {
			if wr := r.Find(w.Name, c); wr != nil {
				if sum, ok := wr.Per[s]; ok {
					pts = append(pts, plotter.XY{X: float64(c), Y: sum.OpsPerSec})
					top = max(top, sum.OpsPerSec)
				}
			}
		}
		if len(pts) == 0 {
			continue
		}
		any = true
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return false, fmt.Errorf("chart %s: %w", path, err)
		}
		line.Color, points.Color = colors[si], colors[si]
		points.Shape = plotutil.Shape(si)
		p.Add(line, points)
		p.Legend.Add(label(s), line, points)
	}
	if !any {
		return false, nil
	}
	// Headroom above the highest point keeps the legend off the data.
	p.Y.Min, p.Y.Max = 0, top*1.3
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		return false, fmt.Errorf("chart %s: %w", path, err)
	}
	return true, nil
}

func (r *Results) latencyChart(path string, w load.Workload, c int) (bool, error) {
	wr := r.Find(w.Name, c)
	if wr == nil {
		return false, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: latency at c=%d", w.Title, c)
	p.Y.Label.Text = "ms"
	p.Legend.Top = true
	width := vg.Points(14)
	var present []string
	for _, s := range series {
		if _, ok := wr.Per[s]; ok {
			present = append(present, s)
		}
	}
	if len(present) == 0 {
		return false, nil
	}
	top := 0.0
	for k, s := range present {
		sum := wr.Per[s]
		top = max(top, sum.P999ms)
		bars, err := plotter.NewBarChart(plotter.Values{sum.P50ms, sum.P99ms, sum.P999ms}, width)
		if err != nil {
			return false, fmt.Errorf("chart %s: %w", path, err)
		}
		bars.Color = colors[indexOf(series, s)]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(k)-float64(len(present)-1)/2)
		p.Add(bars)
		p.Legend.Add(label(s), bars)
	}
	p.NominalX("p50", "p99", "p99.9")
	p.Y.Min, p.Y.Max = 0, top*1.3
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		return false, fmt.Errorf("chart %s: %w", path, err)
	}
	return true, nil
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return 0
}
