package chart

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestReplicaCountIsReadFromTheStatefulSet: the pods run with
// --replicas-from=statefulset and a token whose Role reads that one
// StatefulSet and nothing else.
func TestReplicaCountIsReadFromTheStatefulSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		set     map[string]string
		account string
	}{
		{"default", nil, "ephemeral-store"},
		{"named account", map[string]string{"serviceAccount.name": "kv"}, "kv"},
		{"existing account", map[string]string{"serviceAccount.create": "false", "serviceAccount.name": "shared"}, "shared"},
		{"default account", map[string]string{"serviceAccount.create": "false"}, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{set: tc.set})
			sts := m.statefulSet(t)
			spec := sts.Spec.Template.Spec
			assert.Equal(t, tc.account, spec.ServiceAccountName)
			require.NotNil(t, spec.AutomountServiceAccountToken)
			assert.True(t, *spec.AutomountServiceAccountToken, "the token reads the replica count")
			f := flags(storeContainer(t, sts).Args)
			assert.Equal(t, []string{"statefulset"}, f["replicas-from"])
			assert.Empty(t, f["replicas"])

			var role rbacv1.Role
			m.get(t, "Role", "ephemeral-store", &role)
			require.Len(t, role.Rules, 1, "one rule, nothing else")
			r := role.Rules[0]
			assert.Equal(t, []string{"apps"}, r.APIGroups)
			assert.Equal(t, []string{"statefulsets"}, r.Resources)
			assert.Equal(t, []string{sts.Name}, r.ResourceNames, "its own StatefulSet only")
			assert.ElementsMatch(t, []string{"get", "list", "watch"}, r.Verbs, "read only")

			var binding rbacv1.RoleBinding
			m.get(t, "RoleBinding", "ephemeral-store", &binding)
			assert.Equal(t, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}, binding.RoleRef)
			require.Len(t, binding.Subjects, 1)
			assert.Equal(t, rbacv1.Subject{Kind: "ServiceAccount", Name: tc.account, Namespace: namespace}, binding.Subjects[0])
		})
	}
	t.Run("rbac.create=false leaves the grant to the operator", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: map[string]string{"rbac.create": "false"}})
		assert.Nil(t, m.find("Role", "ephemeral-store"))
		assert.Nil(t, m.find("RoleBinding", "ephemeral-store"))
	})
	t.Run("the schema refuses a misspelt rbac value", func(t *testing.T) {
		t.Parallel()
		_, err := renderE(t, opts{set: map[string]string{"rbac.enabled": "true"}})
		require.Error(t, err)
		_, err = renderE(t, opts{set: map[string]string{"rbac.create": "yes"}})
		require.Error(t, err)
	})
}
