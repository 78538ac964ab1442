// Command chart-readme writes (or with -check, verifies) the values table of
// the chart README from the `## @param` comments of values.yaml.
//
//	go -C tests run ./chart/readmegen/cmd/chart-readme [-check] [-chart ../charts/ephemeral-store]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ephemeral-store/ephemeral-store/tests/chart/readmegen"
)

func main() {
	chart := flag.String("chart", "charts/ephemeral-store", "chart directory holding values.yaml and README.md")
	check := flag.Bool("check", false, "fail when README.md is stale instead of rewriting it")
	flag.Parse()
	if err := run(*chart, *check); err != nil {
		fmt.Fprintln(os.Stderr, "chart-readme:", err)
		os.Exit(1)
	}
}

func run(chart string, check bool) error {
	valuesPath := filepath.Join(chart, "values.yaml")
	readmePath := filepath.Join(chart, "README.md")
	values, err := os.ReadFile(valuesPath)
	if err != nil {
		return err
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return err
	}
	if check {
		if err := readmegen.Check(values, readme); err != nil {
			return err
		}
		fmt.Println(readmePath, "values table is current")
		return nil
	}
	sections, err := readmegen.Parse(values)
	if err != nil {
		return err
	}
	updated, err := readmegen.Update(readme, readmegen.Table(sections))
	if err != nil {
		return err
	}
	if err := os.WriteFile(readmePath, updated, 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", readmePath)
	return nil
}
