package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/report"
)

// rerender rebuilds results.md and the charts from a results.json, so a
// change to the report's layout does not need another 15-minute run.
func rerender(jsonPath string, cfg config) error {
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	var res report.Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("render %s: %w", jsonPath, err)
	}
	out := cfg.Out
	if out == "" {
		out = filepath.Dir(jsonPath)
	}
	concs, err := parseInts(cfg.Concs)
	if err != nil {
		return err
	}
	charts, err := res.Charts(out, concs, cfg.LatencyAt)
	if err != nil {
		return err
	}
	return res.WriteMarkdown(filepath.Join(out, "results.md"), charts)
}
