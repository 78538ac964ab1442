package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/tests/chart/readmegen"
)

func TestReadmeValuesTableIsCurrent(t *testing.T) {
	t.Parallel()
	values, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)
	require.NoError(t, readmegen.Check(values, readme), "regenerate with scripts/chart-readme.sh")
}

func TestReadmeCheckCatchesUndocumentedAndStaleValues(t *testing.T) {
	t.Parallel()
	values, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)

	_, err = readmegen.Parse(append(append([]byte{}, values...), []byte("\nundocumented: 1\n")...))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"undocumented" has no ## @param comment`)

	_, err = readmegen.Parse(append(append([]byte{}, values...), []byte("\n## @param ghost.key Not there\n")...))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"ghost.key" names no key`)

	stale := strings.Replace(string(values), "replicaCount: 5", "replicaCount: 7", 1)
	require.NotEqual(t, string(values), stale)
	assert.ErrorIs(t, readmegen.Check([]byte(stale), readme), readmegen.ErrStale)
}

// TestReadmeOperationsSaysWhatTheStoreAssumes: the chart README's
// Operations section tells an operator the three things the chart cannot
// enforce by itself, each with what to do: why drains take one pod at a
// time, that a pod identity must never run twice (force-deleting the pods
// of an unreachable node that is alive), and the data quota.
func TestReadmeOperationsSaysWhatTheStoreAssumes(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	require.NoError(t, err)
	_, ops, found := strings.Cut(string(readme), "\n## Operations\n")
	require.True(t, found, "the chart README has an Operations section")
	ops, _, _ = strings.Cut(ops, "\n## ")
	ops = strings.Join(strings.Fields(ops), " ") // wrapping is not content
	for _, want := range []string{
		"### Draining nodes: one pod at a time", "`pdb.maxUnavailable: 1`", "placeholder", "one more fault",
		"### One process per pod identity", "kubectl delete pod --force --grace-period=0", "two writable clusters",
		"kubectl cordon <node>", "power it off", "kubectl delete node <node>",
		"### Memory: the data quota", "507 `quota_exceeded`", "store.quotaBytes", "EphemeralStoreMemoryQuotaNearlyFull",
	} {
		assert.Contains(t, ops, want)
	}
}
