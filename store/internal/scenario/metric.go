package scenario

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
)

// ScrapeMetric reads one counter or gauge without labels from the
// /metrics of the probe listener at probeAddr, for Cluster.Metric; ok is
// false when the node does not answer or lacks the metric.
func ScrapeMetric(hc *http.Client, probeAddr, name string) (value float64, ok bool) {
	resp, err := hc.Get("http://" + probeAddr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), name+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
