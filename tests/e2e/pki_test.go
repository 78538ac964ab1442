//go:build e2e

package e2e

import (
	"testing"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/tests/internal/testca"
)

// releaseCA reads the root CA the chart generated (generate mode: Secret
// <fullname>-secret, keys rootCA.crt and rootCA.key).
func (r *release) releaseCA(t *testing.T) *testca.CA {
	t.Helper()
	name := r.caSecretName()
	secret, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, name)
	require.NoError(t, err, "root CA Secret %s", name)
	return testca.Parse(t, secret.Data["rootCA.crt"], secret.Data["rootCA.key"])
}
