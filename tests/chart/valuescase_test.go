package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// valuesCase is one set of values for a table of refusals or of their
// twins: values next to the refused ones that must render.
type valuesCase struct {
	name    string
	set     map[string]string
	setJSON map[string]string
	want    []string // parts of helm's error message; none for a twin
}

// requireRefused renders each case and checks that helm refuses it with a
// message holding every want.
func requireRefused(t *testing.T, cases []valuesCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := renderE(t, opts{set: tc.set, setJSON: tc.setJSON})
			require.Error(t, err, "helm template must refuse these values")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// requireRendered renders each case and checks that helm accepts it.
func requireRendered(t *testing.T, cases []valuesCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := renderE(t, opts{set: tc.set, setJSON: tc.setJSON})
			assert.NoError(t, err)
		})
	}
}
