package report

import (
	"reflect"
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

// section is md from the line heading to the next "## " heading.
func section(t *testing.T, md, heading string) string {
	t.Helper()
	i := strings.Index(md, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("no %q in:\n%s", heading, md)
	}
	s := md[i+1:]
	if j := strings.Index(s[1:], "\n## "); j >= 0 {
		s = s[:j+1]
	}
	return s
}

// rowsAfter returns the table rows ("| c |...") of the first table after
// the line that starts with heading in md.
func rowsAfter(md, heading string) (header string, rows []string) {
	lines := strings.Split(md, "\n")
	i := 0
	for i < len(lines) && !strings.HasPrefix(lines[i], heading) {
		i++
	}
	for i < len(lines) && !strings.HasPrefix(lines[i], "|") {
		i++
	}
	if i < len(lines) {
		header = lines[i]
		i += 2 // the separator
	}
	for ; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		rows = append(rows, lines[i])
	}
	return header, rows
}

func TestMarkdownShowsTheStoreOverRESPBesideHTTP(t *testing.T) {
	r := &Results{Workloads: []WorkloadResult{
		{Name: "get-stale", Title: "Stale GET", Concurrency: 1, Per: map[string]load.Summary{
			"ephemeral-store": {OpsPerSec: 3000, P50ms: 0.3, P99ms: 1, P999ms: 2},
			StoreRESP:         {OpsPerSec: 9000, P50ms: 0.1, P99ms: 0.5, P999ms: 0.9},
			"etcd":            {OpsPerSec: 2000, P50ms: 0.4, P99ms: 2, P999ms: 4},
			"redis":           {OpsPerSec: 15000, P50ms: 0.06, P99ms: 0.2, P999ms: 0.5},
		}},
		{Name: "get-followers", Title: "Linearizable GET through followers", Concurrency: 16, Per: map[string]load.Summary{
			"ephemeral-store": {OpsPerSec: 3000, P50ms: 4, P99ms: 12, P999ms: 20},
			StoreRESP:         {OpsPerSec: 6000, P50ms: 2, P99ms: 6, P999ms: 9, Errors: 2, Requests: 100, FirstErr: "boom"},
			"etcd":            {OpsPerSec: 2500, P50ms: 5, P99ms: 15, P999ms: 22},
		}},
		{Name: "put", Title: "Replicated PUT", Concurrency: 1, Per: map[string]load.Summary{
			"ephemeral-store": {OpsPerSec: 600, P50ms: 1, P99ms: 3, P999ms: 7},
		}},
	}}
	md := r.Markdown(nil)
	if !strings.Contains(md, "HTTP/2 API through its Go client") || !strings.Contains(md, "Redis-protocol port") {
		t.Errorf("results.md does not say which protocol each store row used:\n%s", md)
	}

	// The HTTP table keeps its 11 columns, the store's labelled HTTP.
	stale := section(t, md, "## Stale GET (all endpoints; Redis GET)")
	hdr, rows := rowsAfter(stale, "## Stale GET (all endpoints; Redis GET)")
	if !strings.Contains(hdr, "| ephemeral-store (HTTP) ops/s |") || strings.Contains(hdr, "RESP") {
		t.Errorf("main table header %q", hdr)
	}
	if len(rows) != 1 || strings.Count(rows[0], "|") != 12 || !strings.Contains(rows[0], "| 3000 |") || !strings.Contains(rows[0], "| 1.50x | 0.2x |") {
		t.Errorf("main table rows %q: want the HTTP row alone, 11 cells, ours/etcd 1.50x, ours/Redis 0.2x", rows)
	}

	// Then the RESP table: its ratios to HTTP, etcd and Redis.
	hdr, rows = rowsAfter(stale, "The store over its RESP port")
	if want := "| c | ephemeral-store (RESP) ops/s | ephemeral-store (RESP) p50/p99/p99.9 | ops/s RESP/HTTP | ops/s RESP/etcd | ops/s RESP/Redis | p99 RESP/etcd | p99 RESP/Redis |"; hdr != want {
		t.Errorf("RESP header\n%q, want\n%q", hdr, want)
	}
	if want := "| 1 | 9000 | 0.10 / 0.50 / 0.90 | 3.00x | 4.50x | 0.6x | 0.25x | 2.50x |"; len(rows) != 1 || rows[0] != want {
		t.Errorf("RESP rows %q, want [%q]", rows, want)
	}

	// Through followers Redis does not apply: no Redis columns.
	_, rows = rowsAfter(section(t, md, "## Linearizable GET through followers"), "The store over its RESP port")
	if want := "| 16 | 6000 | 2.00 / 6.00 / 9.00 | 2.00x | 2.40x | 0.4x |"; len(rows) != 1 || rows[0] != want {
		t.Errorf("followers RESP rows %q, want [%q]", rows, want)
	}
	if !strings.Contains(md, "ephemeral-store (RESP) c=16: 2 of 100 requests failed (first: boom)") {
		t.Errorf("RESP errors not reported:\n%s", md)
	}

	// No RESP table under a workload measured over HTTP only, and the
	// protocols paragraph says the writes were HTTP's.
	put := section(t, md, "## Replicated PUT (all endpoints)")
	if strings.Contains(put, "RESP port") {
		t.Errorf("PUT section has a RESP table:\n%s", put)
	}
	if !strings.Contains(md, "Writes, failover, catch-up and memory are HTTP only") {
		t.Errorf("results.md with RESP reads only does not say writes were HTTP only:\n%s", md)
	}
}

func TestMarkdownShowsTheStoreWritingOverRESPBesideHTTP(t *testing.T) {
	r := &Results{Workloads: []WorkloadResult{
		{Name: "put", Title: "Replicated PUT", Concurrency: 1, Per: map[string]load.Summary{
			"ephemeral-store": {OpsPerSec: 600, P50ms: 1.5, P99ms: 3, P999ms: 7},
			StoreRESP:         {OpsPerSec: 900, P50ms: 1, P99ms: 2, P999ms: 4},
			"etcd":            {OpsPerSec: 500, P50ms: 2, P99ms: 4, P999ms: 8},
			"redis":           {OpsPerSec: 9000, P50ms: 0.1, P99ms: 0.4, P999ms: 1},
		}},
		{Name: "put", Title: "Replicated PUT", Concurrency: 16, Per: map[string]load.Summary{
			"ephemeral-store": {OpsPerSec: 3000, P50ms: 5, P99ms: 12, P999ms: 20},
			StoreRESP: {OpsPerSec: 4500, P50ms: 3, P99ms: 9, P999ms: 15, Errors: 1, Requests: 200,
				FirstErr: `store RESP SET "k/1" (256-byte value): NOQUORUM the write may or may not have been applied (x)`},
			"etcd":  {OpsPerSec: 2000, P50ms: 7, P99ms: 18, P999ms: 30},
			"redis": {OpsPerSec: 30000, P50ms: 0.5, P99ms: 1, P999ms: 2},
		}},
		{Name: "mix", Title: "90/10 read/write mix", Concurrency: 64, Per: map[string]load.Summary{
			"ephemeral-store": {OpsPerSec: 5000, P50ms: 10, P99ms: 30, P999ms: 50},
			StoreRESP:         {OpsPerSec: 10000, P50ms: 5, P99ms: 15, P999ms: 25},
			"etcd":            {OpsPerSec: 4000, P50ms: 12, P99ms: 40, P999ms: 60},
			"redis":           {OpsPerSec: 40000, P50ms: 1, P99ms: 3, P999ms: 5},
		}},
	}}
	md := r.Markdown(nil)
	if !strings.Contains(md, "SET key value for writes") || !strings.Contains(md, "Failover, catch-up and memory are HTTP only") ||
		strings.Contains(md, "Writes, failover") {
		t.Errorf("the protocols paragraph does not say the writes were measured over RESP too:\n%s", md)
	}
	if !strings.Contains(md, "which forwards them to the leader") {
		t.Errorf("a run without resp_writes does not say its SETs were forwarded:\n%s", md)
	}
	r.Settings = map[string]any{"resp_writes": "cluster"}
	if cl := r.Markdown(nil); !strings.Contains(cl, "Redis Cluster client, seeded with every node, to the leader that CLUSTER SLOTS names") {
		t.Errorf("a run with resp_writes=cluster does not say its SETs went to the leader:\n%s", cl)
	}

	// The HTTP table is as before: the HTTP rows alone, 11 cells.
	put := section(t, md, "## Replicated PUT (all endpoints)")
	hdr, rows := rowsAfter(put, "## Replicated PUT (all endpoints)")
	if strings.Contains(hdr, "RESP") || len(rows) != 2 || strings.Count(rows[1], "|") != 12 ||
		!strings.HasPrefix(rows[1], "| 16 | 3000 |") || !strings.Contains(rows[1], "| 1.50x | 0.1x |") {
		t.Errorf("PUT main table %q %q: want the HTTP rows alone, c=16 ours/etcd 1.50x, ours/Redis 0.1x", hdr, rows)
	}

	// The RESP table: ratios to the store's HTTP row, etcd and Redis.
	hdr, rows = rowsAfter(put, "The store over its RESP port")
	if want := "| c | ephemeral-store (RESP) ops/s | ephemeral-store (RESP) p50/p99/p99.9 | ops/s RESP/HTTP | ops/s RESP/etcd | ops/s RESP/Redis | p99 RESP/etcd | p99 RESP/Redis |"; hdr != want {
		t.Errorf("PUT RESP header\n%q, want\n%q", hdr, want)
	}
	want := []string{
		"| 1 | 900 | 1.00 / 2.00 / 4.00 | 1.50x | 1.80x | 0.1x | 0.5x | 5.00x |",
		"| 16 | 4500 | 3.00 / 9.00 / 15.0 | 1.50x | 2.25x | 0.15x | 0.5x | 9.00x |",
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("PUT RESP rows\n%q, want\n%q", rows, want)
	}
	if !strings.Contains(put, `ephemeral-store (RESP) c=16: 1 of 200 requests failed (first: store RESP SET "k/1" (256-byte value): NOQUORUM`) {
		t.Errorf("the RESP write error is not reported with its command and reply:\n%s", put)
	}

	_, rows = rowsAfter(section(t, md, "## 90/10 read/write mix (all endpoints)"), "The store over its RESP port")
	if want := "| 64 | 10000 | 5.00 / 15.0 / 25.0 | 2.00x | 2.50x | 0.25x | 0.375x | 5.00x |"; len(rows) != 1 || rows[0] != want {
		t.Errorf("mix RESP rows %q, want [%q]", rows, want)
	}
}

func TestMarkdownSaysWhenRESPWasNotMeasured(t *testing.T) {
	r := &Results{Workloads: []WorkloadResult{{Name: "get-stale", Title: "Stale GET", Concurrency: 1,
		Per: map[string]load.Summary{"ephemeral-store": {OpsPerSec: 3000, P99ms: 1}}}}}
	md := r.Markdown(nil)
	if !strings.Contains(md, "did not measure the store over its RESP port") || strings.Contains(md, "| ephemeral-store (RESP)") {
		t.Errorf("results.md without RESP results:\n%s", md)
	}
}
