package faulttest

import (
	"testing"

	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// TestMajorityLossReformsEmptyCluster kills three of five processes at
// once with SIGKILL and restarts them: the cluster must re-form empty by
// itself. The scenario is shared with the in-process tier
// (store/internal/server's test of the same name).
func TestMajorityLossReformsEmptyCluster(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	scenario.MajorityLoss(t, c.Scenario())
}

// TestSingleNodeLossKeepsData is the twin that proves the assertion above
// can fail: the leader alone is SIGKILLed and restarted, and the key stays.
func TestSingleNodeLossKeepsData(t *testing.T) {
	c := NewCluster(t, bin, DefaultOptions())
	scenario.SingleNodeLoss(t, c.Scenario())
}
