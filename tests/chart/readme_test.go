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
