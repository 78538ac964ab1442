package faulttest

import (
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// dataLossMetric counts the times a node re-formed an empty cluster.
const dataLossMetric = scenario.DataLossMetric

// writeMarker writes key=value through the cluster, retrying while it
// elects, and waits until every node answers it (scenario.WriteMarker).
func writeMarker(t *testing.T, c *Cluster, key, value string) {
	t.Helper()
	scenario.WriteMarker(t, c.Scenario(), key, value)
}

// others lists the nodes of c that are not in victims.
func others(c *Cluster, victims []int) []int {
	return scenario.Others(c.Scenario(), victims...)
}
