package report

import (
	"strings"
	"testing"

	"github.com/ephemeral-store/ephemeral-store/bench/internal/load"
)

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		a, b float64
		want string
	}{
		{2, 1, "2.00x"},
		{1, 4, "0.25x"},
		{1, 3, "0.333x"},
		{50, 2, "25x"},
		{0, 1, "n/a"},
		{1, 0, "n/a"},
	} {
		if got := Ratio(tc.a, tc.b); got != tc.want {
			t.Errorf("Ratio(%v, %v) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestTableEscapesPipesAndPadsRows(t *testing.T) {
	got := Table([]string{"a", "b"}, [][]string{{"x|y"}, {"1", "2"}})
	want := "| a | b |\n|---|---|\n| x\\|y |  |\n| 1 | 2 |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestMarkdownShowsRatiosAndMissingSystems(t *testing.T) {
	r := &Results{Workloads: []WorkloadResult{{
		Name: "put", Title: "PUT", Concurrency: 16,
		Per: map[string]load.Summary{
			"ephemeral-store": {OpsPerSec: 2000, P50ms: 1, P99ms: 4, P999ms: 8},
			"etcd":            {OpsPerSec: 1000, P50ms: 2, P99ms: 8, P999ms: 9},
		},
	}}}
	md := r.Markdown(nil)
	row := ""
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "| 16 |") {
			row = l
		}
	}
	if row == "" {
		t.Fatalf("no row for c=16 in:\n%s", md)
	}
	for _, want := range []string{"| 2000 |", "1.00 / 4.00 / 8.00", "| 2.00x |", "| 0.5x |", "| n/a |", "| – | – |"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
}

func TestLeaderNoteSumsLeaderChangesOverTheRows(t *testing.T) {
	r := &Results{Workloads: []WorkloadResult{
		{Name: "put", Concurrency: 1, Leader: map[string]int{"ephemeral-store": 0, "etcd": 3},
			LeaderChanges: map[string]float64{"ephemeral-store": 0, "etcd": 0}},
		{Name: "put", Concurrency: 64, Leader: map[string]int{"ephemeral-store": 1, "etcd": 3},
			LeaderChanges: map[string]float64{"ephemeral-store": 4, "etcd": 5}},
		{Name: "mix", Concurrency: 64, LeaderChanges: map[string]float64{"ephemeral-store": 100}},
	}}
	got := leaderNote(r, "put")
	for _, want := range []string{"ephemeral-store node 0", "etcd node 3", "ephemeral-store 4, etcd 5"} {
		if !strings.Contains(got, want) {
			t.Errorf("note %q lacks %q", got, want)
		}
	}
}
