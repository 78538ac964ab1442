package chart

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

func TestDefaultValuesRenderTheOldObjectNames(t *testing.T) {
	t.Parallel()
	m := render(t, opts{})

	want := []string{
		"ConfigMap/ephemeral-store-users",
		"NetworkPolicy/ephemeral-store",
		"Pod/ephemeral-store-test",
		"PodDisruptionBudget/ephemeral-store",
		"Role/ephemeral-store",
		"RoleBinding/ephemeral-store",
		"Secret/ephemeral-store-ca",
		"Secret/ephemeral-store-secret",
		"Secret/ephemeral-store-tls",
		"Secret/ephemeral-store-user-myuser",
		"Service/ephemeral-store",
		"Service/ephemeral-store-info",
		"ServiceAccount/ephemeral-store",
		"StatefulSet/ephemeral-store",
	}
	assert.Equal(t, want, m.names())

	var client corev1.Service
	m.get(t, "Service", "ephemeral-store", &client)
	require.Len(t, client.Spec.Ports, 1)
	assert.Equal(t, int32(8087), client.Spec.Ports[0].Port, "the old client port")
	assert.Equal(t, "client", client.Spec.Ports[0].TargetPort.String())
	assert.Equal(t, corev1.ServiceTypeClusterIP, client.Spec.Type)
	assert.False(t, client.Spec.PublishNotReadyAddresses, "clients reach ready pods only")

	var info corev1.Service
	m.get(t, "Service", "ephemeral-store-info", &info)
	assert.Equal(t, corev1.ClusterIPNone, info.Spec.ClusterIP, "headless")
	assert.True(t, info.Spec.PublishNotReadyAddresses, "peers must find each other before any is ready")

	for _, o := range m.objects {
		assert.Equal(t, namespace, o.Meta.Namespace, "%s/%s namespace", o.Kind, o.Name)
	}
}

func TestObjectNamesFollowTheReleaseName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		release string
		set     map[string]string
		base    string
	}{
		{name: "old release name keeps old names", release: "ephemeral-store", base: "ephemeral-store"},
		{name: "other release is prefixed", release: "cache", base: "cache-ephemeral-store"},
		{name: "release containing the chart name is used as is", release: "eu-ephemeral-store", base: "eu-ephemeral-store"},
		{name: "fullnameOverride wins", release: "cache", set: map[string]string{"fullnameOverride": "kv"}, base: "kv"},
		{name: "nameOverride replaces the chart name", release: "cache", set: map[string]string{"nameOverride": "kv"}, base: "cache-kv"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{release: tc.release, set: tc.set})
			for _, want := range []string{
				"Service/" + tc.base,
				"Service/" + tc.base + "-info",
				"ConfigMap/" + tc.base + "-users",
				"StatefulSet/" + tc.base,
				"Secret/" + tc.base + "-secret",
				"Secret/" + tc.base + "-tls",
				"Secret/" + tc.base + "-user-myuser",
				"Secret/" + tc.base + "-ca",
				"PodDisruptionBudget/" + tc.base,
				"NetworkPolicy/" + tc.base,
				"Pod/" + tc.base + "-test",
			} {
				assert.Contains(t, m.names(), want)
			}

			sts := m.statefulSet(t)
			assert.Equal(t, tc.base+"-info", sts.Spec.ServiceName)
			f := flags(storeContainer(t, sts).Args)
			assert.Equal(t, []string{fmt.Sprintf("%s-info.%s.svc.cluster.local", tc.base, namespace)}, f["peers-dns"])
			users := volume(sts.Spec.Template.Spec, "users")
			require.NotNil(t, users)
			assert.Equal(t, tc.base+"-users", users.ConfigMap.Name)

			var pod corev1.Pod
			m.get(t, "Pod", tc.base+"-test", &pod)
			assert.Contains(t, pod.Spec.Containers[0].Args,
				fmt.Sprintf("--endpoints=https://%s.%s.svc.cluster.local:8087", tc.base, namespace))
		})
	}
}

func TestEveryObjectCarriesTheStandardLabels(t *testing.T) {
	t.Parallel()
	for _, release := range []string{oldRelease, "cache"} {
		t.Run(release, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{release: release, set: map[string]string{"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true"}})
			for _, o := range m.objects {
				l := o.Meta.Labels
				assert.Equal(t, "ephemeral-store", l["app.kubernetes.io/name"], "%s/%s", o.Kind, o.Name)
				assert.Equal(t, release, l["app.kubernetes.io/instance"], "%s/%s", o.Kind, o.Name)
				assert.Equal(t, "0.1.0", l["app.kubernetes.io/version"], "%s/%s", o.Kind, o.Name)
				assert.Equal(t, "Helm", l["app.kubernetes.io/managed-by"], "%s/%s", o.Kind, o.Name)
				assert.NotEmpty(t, l["app.kubernetes.io/component"], "%s/%s", o.Kind, o.Name)
				assert.Equal(t, "ephemeral-store-0.2.0", l["helm.sh/chart"], "%s/%s", o.Kind, o.Name)
			}

			selector := map[string]string{
				"app.kubernetes.io/name":      "ephemeral-store",
				"app.kubernetes.io/instance":  release,
				"app.kubernetes.io/component": "store",
			}
			sts := m.statefulSet(t)
			assert.Equal(t, selector, sts.Spec.Selector.MatchLabels, "selector: immutable labels only")
			for k, v := range selector {
				assert.Equal(t, v, sts.Spec.Template.Labels[k], "pod label %s", k)
			}
			for _, svc := range m.ofKind("Service") {
				var s corev1.Service
				m.get(t, "Service", svc.Name, &s)
				assert.Equal(t, selector, s.Spec.Selector, "Service %s selects the store pods", svc.Name)
			}

			// The test pod must never become an endpoint of the store's Services.
			var pod corev1.Pod
			m.get(t, "Pod", m.ofKind("Pod")[0].Name, &pod)
			assert.Equal(t, "test", pod.Labels["app.kubernetes.io/component"])
		})
	}
}

func TestStatefulSetDefaults(t *testing.T) {
	t.Parallel()
	m := render(t, opts{})
	sts := m.statefulSet(t)
	spec := sts.Spec.Template.Spec
	c := storeContainer(t, sts)

	assert.Equal(t, "apps/v1", sts.APIVersion)
	assert.Equal(t, int32(5), *sts.Spec.Replicas)
	assert.Equal(t, appsv1.ParallelPodManagement, sts.Spec.PodManagementPolicy)
	assert.Empty(t, sts.Spec.VolumeClaimTemplates, "never persisted")

	assert.Equal(t, "localhost/ephemeral-store:0.1.0", c.Image)
	assert.Equal(t, corev1.PullIfNotPresent, c.ImagePullPolicy)
	assert.True(t, resource.MustParse("1").Equal(c.Resources.Requests[corev1.ResourceCPU]), "1 CPU request")
	assert.True(t, resource.MustParse("1Gi").Equal(c.Resources.Requests[corev1.ResourceMemory]), "1Gi request")

	require.NotNil(t, spec.TerminationGracePeriodSeconds)
	assert.GreaterOrEqual(t, *spec.TerminationGracePeriodSeconds, int64(30), "time for a graceful leave")

	// Probes on the probe port.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	assert.Equal(t, map[string]int32{"client": 8087, "peer": 8088, "probe": 8089}, ports)
	for name, probe := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		require.NotNil(t, probe, name)
		require.NotNil(t, probe.HTTPGet, name)
		assert.Equal(t, "probe", probe.HTTPGet.Port.String(), name)
		assert.Equal(t, corev1.URISchemeHTTP, defaultScheme(probe.HTTPGet.Scheme), name)
	}
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/healthz", c.StartupProbe.HTTPGet.Path)
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)

	// Security.
	// The token reads the StatefulSet's replica count, nothing else
	// (TestReplicaCountIsReadFromTheStatefulSet).
	require.NotNil(t, spec.AutomountServiceAccountToken)
	assert.True(t, *spec.AutomountServiceAccountToken)
	psc := spec.SecurityContext
	require.NotNil(t, psc)
	assert.True(t, *psc.RunAsNonRoot)
	assert.Equal(t, int64(65532), *psc.RunAsUser)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
	sc := c.SecurityContext
	require.NotNil(t, sc)
	assert.True(t, *sc.ReadOnlyRootFilesystem)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.True(t, *sc.RunAsNonRoot)
	assert.Equal(t, int64(65532), *sc.RunAsUser)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Empty(t, sc.Capabilities.Add)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)

	// Identity and discovery (ES_MEMORY_LIMIT: TestMemoryLimitReachesGo).
	require.Len(t, c.Env, 3)
	assert.Equal(t, "ES_NODE_NAME", c.Env[0].Name)
	require.NotNil(t, c.Env[0].ValueFrom)
	assert.Equal(t, "metadata.name", c.Env[0].ValueFrom.FieldRef.FieldPath)
	assert.Equal(t, "POD_NAMESPACE", c.Env[1].Name)
	require.NotNil(t, c.Env[1].ValueFrom)
	assert.Equal(t, "metadata.namespace", c.Env[1].ValueFrom.FieldRef.FieldPath)
	require.NotEmpty(t, c.Args)
	assert.Equal(t, "serve", c.Args[0])
	f := flags(c.Args)
	assert.Equal(t, []string{"ephemeral-store-info." + namespace + ".svc.cluster.local"}, f["peers-dns"])
	assert.Empty(t, f["replicas"], "the count is read from the StatefulSet, not a flag only a restart changes")
	assert.Equal(t, []string{"statefulset"}, f["replicas-from"])
	assert.Equal(t, []string{":8087"}, f["listen"])
	assert.Equal(t, []string{":8088"}, f["peer-listen"])
	assert.Equal(t, []string{":8089"}, f["probe-listen"])
	assert.Equal(t, []string{"/etc/ephemeral-store/users"}, f["users-dir"])
	assert.Equal(t, []string{"ephemeral-store-peer"}, f["peer-cn"])

	// Users: the ConfigMap as a directory.
	users := volume(spec, "users")
	require.NotNil(t, users)
	require.NotNil(t, users.ConfigMap)
	assert.Equal(t, "ephemeral-store-users", users.ConfigMap.Name)
	assert.Equal(t, "users", mounts(c)["/etc/ephemeral-store/users"])

	assert.NotEmpty(t, sts.Spec.Template.Annotations["checksum/config"])

	// Default spreading: soft anti-affinity across nodes.
	require.NotNil(t, spec.Affinity)
	require.NotNil(t, spec.Affinity.PodAntiAffinity)
	require.Len(t, spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, 1)
	assert.Empty(t, spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
	term := spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	assert.Equal(t, "kubernetes.io/hostname", term.TopologyKey)
	assert.Equal(t, sts.Spec.Selector.MatchLabels, term.LabelSelector.MatchLabels)
}

func defaultScheme(s corev1.URIScheme) corev1.URIScheme {
	if s == "" {
		return corev1.URISchemeHTTP
	}
	return s
}

func TestSpreadingAcrossNodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		set      map[string]string
		setJSON  map[string]string
		required int
		soft     int
		spread   int
	}{
		{name: "soft preset", set: map[string]string{"podAntiAffinityPreset": "soft"}, soft: 1},
		{name: "hard preset", set: map[string]string{"podAntiAffinityPreset": "hard"}, required: 1},
		{name: "no preset", set: map[string]string{"podAntiAffinityPreset": ""}},
		{
			name:    "topology spread gets the store selector",
			set:     map[string]string{"podAntiAffinityPreset": ""},
			setJSON: map[string]string{"topologySpreadConstraints": `[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway"}]`},
			spread:  1,
		},
		{
			name:     "custom affinity replaces the preset",
			set:      map[string]string{"podAntiAffinityPreset": "soft"},
			setJSON:  map[string]string{"affinity": `{"podAntiAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[{"topologyKey":"zone","labelSelector":{"matchLabels":{"a":"b"}}}]}}`},
			required: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sts := render(t, opts{set: tc.set, setJSON: tc.setJSON}).statefulSet(t)
			spec := sts.Spec.Template.Spec
			var req, pref int
			if spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil {
				req = len(spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
				pref = len(spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
			}
			assert.Equal(t, tc.required, req, "required terms")
			assert.Equal(t, tc.soft, pref, "preferred terms")
			require.Len(t, spec.TopologySpreadConstraints, tc.spread)
			for _, c := range spec.TopologySpreadConstraints {
				require.NotNil(t, c.LabelSelector)
				assert.Equal(t, sts.Spec.Selector.MatchLabels, c.LabelSelector.MatchLabels)
			}
		})
	}
}

// TestNothingForbiddenIsRendered holds the rules of docs/architecture.md
// ("Rules every part keeps") for every values file
// and TLS mode: no persistence, no node or scratch volumes, no subPath, no port
// that serves data without TLS, only Secret and ConfigMap volumes.
func TestNothingForbiddenIsRendered(t *testing.T) {
	t.Parallel()
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			assertNothingForbidden(t, render(t, v.o))
		})
	}
}

// TestObjectsDecodeStrictlyIntoKubernetesTypes catches misspelled or misplaced
// fields: every object of a core kind must decode into its k8s.io/api type
// without an unknown field.
func TestObjectsDecodeStrictlyIntoKubernetesTypes(t *testing.T) {
	t.Parallel()
	types := map[string]func() any{
		"ConfigMap":           func() any { return &corev1.ConfigMap{} },
		"Secret":              func() any { return &corev1.Secret{} },
		"Service":             func() any { return &corev1.Service{} },
		"ServiceAccount":      func() any { return &corev1.ServiceAccount{} },
		"Pod":                 func() any { return &corev1.Pod{} },
		"StatefulSet":         func() any { return &appsv1.StatefulSet{} },
		"PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
		"NetworkPolicy":       func() any { return &networkingv1.NetworkPolicy{} },
		"Role":                func() any { return &rbacv1.Role{} },
		"RoleBinding":         func() any { return &rbacv1.RoleBinding{} },
	}
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			for _, o := range render(t, v.o).objects {
				newObj, ok := types[o.Kind]
				if !ok {
					assert.Contains(t, []string{"Certificate", "Issuer", "ServiceMonitor", "PrometheusRule"}, o.Kind, "a kind without a strict check")
					continue
				}
				assert.NoError(t, yaml.UnmarshalStrict(o.Raw, newObj()), "%s/%s", o.Kind, o.Name)
			}
		})
	}
}

type variant struct {
	name string
	o    opts
}

// variants are the renders the whole-chart checks run on: every TLS mode, the
// optional objects, and every values file.
func variants(t *testing.T) []variant {
	t.Helper()
	out := []variant{
		{name: "defaults"},
		{name: "tls caSecret", o: opts{set: map[string]string{"tls.mode": "caSecret"}}},
		{name: "tls existing", o: opts{set: map[string]string{"tls.mode": "existing", "tls.existing.serverSecret": "srv", "tls.existing.caSecret": "ca", "users[0].name": "myuser", "users[0].createSecret": "false", "tests.existingSecret": "u"}}},
		{name: "tls certManager", o: opts{set: map[string]string{"tls.mode": "certManager", "tls.clientCA.existingSecret": "users-ca", "users[0].name": "myuser", "users[0].createSecret": "false", "tests.enabled": "false"}}},
		{name: "metrics", o: opts{set: map[string]string{"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true"}}},
		{name: "everything optional", o: opts{
			set: map[string]string{
				"networkPolicy.restrictEgress": "true", "podAntiAffinityPreset": "hard", "priorityClassName": "critical",
				"image.pullSecrets[0]": "regcred", "serviceAccount.annotations.a": "b", "commonAnnotations.team": "kv",
				"commonLabels.tier": "data", "podAnnotations.x": "y", "podLabels.z": "w", "store.extraArgs[0]": "--reload-interval=10s",
			},
			setJSON: map[string]string{
				"store.extraEnv":            `[{"name":"ES_LOG_LEVEL","value":"debug"}]`,
				"tolerations":               `[{"key":"dedicated","operator":"Equal","value":"kv","effect":"NoSchedule"}]`,
				"nodeSelector":              `{"kubernetes.io/os":"linux"}`,
				"topologySpreadConstraints": `[{"maxSkew":1,"topologyKey":"zone","whenUnsatisfiable":"DoNotSchedule"}]`,
			},
		}},
	}
	for _, f := range valuesFiles(t) {
		out = append(out, variant{name: f, o: opts{valuesFiles: []string{f}}})
	}
	return out
}

func assertNothingForbidden(t *testing.T, m *manifests) {
	t.Helper()
	for _, o := range m.objects {
		assert.NotEqual(t, "PersistentVolumeClaim", o.Kind)
		assert.NotEqual(t, "PersistentVolume", o.Kind)
		assert.NotContains(t, string(o.Raw), "hostPath")
		assert.NotContains(t, string(o.Raw), "emptyDir")
		assert.NotContains(t, string(o.Raw), "subPath")
	}

	sts := m.statefulSet(t)
	assert.Empty(t, sts.Spec.VolumeClaimTemplates)
	specs := []corev1.PodSpec{sts.Spec.Template.Spec}
	for _, p := range m.ofKind("Pod") {
		var pod corev1.Pod
		m.get(t, "Pod", p.Name, &pod)
		specs = append(specs, pod.Spec)
	}
	for _, spec := range specs {
		assert.False(t, spec.HostNetwork)
		for _, vol := range spec.Volumes {
			assert.True(t, vol.Secret != nil || vol.ConfigMap != nil, "volume %q is neither a Secret nor a ConfigMap", vol.Name)
		}
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			for _, vm := range c.VolumeMounts {
				assert.Empty(t, vm.SubPath, "subPath mounts are never updated")
				assert.True(t, vm.ReadOnly, "mount %s is read-only", vm.MountPath)
			}
		}
	}

	// Only the three documented ports; only the probe port is plain HTTP and it carries no data.
	c := storeContainer(t, sts)
	for _, p := range c.Ports {
		assert.Contains(t, []string{"client", "peer", "probe"}, p.Name)
	}
	f := flags(c.Args)
	for _, name := range []string{"insecure", "plaintext", "no-tls", "tls-disable"} {
		assert.NotContains(t, f, name)
	}
	assert.True(t, len(f["tls-cert"]) == 1 || len(f["tls-ca-key"]) == 1, "the client port serves TLS")
	for _, svc := range m.ofKind("Service") {
		var s corev1.Service
		m.get(t, "Service", svc.Name, &s)
		for _, p := range s.Spec.Ports {
			if p.TargetPort.String() == "probe" {
				assert.Equal(t, "metrics", p.Name, "only the metrics Service exposes the probe port")
				continue
			}
			assert.Contains(t, []string{"client", "peer"}, p.TargetPort.String())
		}
	}
}

func TestEnvironmentValuesFiles(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, m *manifests)
	replicas := func(n int32) check {
		return func(t *testing.T, m *manifests) {
			assert.Equal(t, n, *m.statefulSet(t).Spec.Replicas)
		}
	}
	antiAffinity := func(hard bool) check {
		return func(t *testing.T, m *manifests) {
			aa := m.statefulSet(t).Spec.Template.Spec.Affinity.PodAntiAffinity
			require.NotNil(t, aa)
			if hard {
				assert.Len(t, aa.RequiredDuringSchedulingIgnoredDuringExecution, 1)
				assert.Empty(t, aa.PreferredDuringSchedulingIgnoredDuringExecution)
			} else {
				assert.Empty(t, aa.RequiredDuringSchedulingIgnoredDuringExecution)
				assert.Len(t, aa.PreferredDuringSchedulingIgnoredDuringExecution, 1)
			}
		}
	}
	requests := func(cpu, mem string) check {
		return func(t *testing.T, m *manifests) {
			r := storeContainer(t, m.statefulSet(t)).Resources.Requests
			assert.True(t, resource.MustParse(cpu).Equal(r[corev1.ResourceCPU]), "cpu %s", r.Cpu())
			assert.True(t, resource.MustParse(mem).Equal(r[corev1.ResourceMemory]), "memory %s", r.Memory())
		}
	}
	has := func(names ...string) check {
		return func(t *testing.T, m *manifests) {
			for _, n := range names {
				assert.Contains(t, m.names(), n)
			}
		}
	}
	cases := []struct {
		file   string
		checks []check
	}{
		{file: "values-dev.yaml", checks: []check{replicas(3), antiAffinity(false), requests("100m", "128Mi"),
			has("PodDisruptionBudget/ephemeral-store", "Secret/ephemeral-store-user-myuser")}},
		{file: "values-prod.yaml", checks: []check{replicas(5), antiAffinity(true), requests("1", "1Gi"),
			has("PodDisruptionBudget/ephemeral-store", "ServiceMonitor/ephemeral-store", "Service/ephemeral-store-metrics",
				"Certificate/ephemeral-store-server", "Certificate/ephemeral-store-user-myuser"),
			func(t *testing.T, m *manifests) {
				var pdb policyv1.PodDisruptionBudget
				m.get(t, "PodDisruptionBudget", "ephemeral-store", &pdb)
				assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())
			}}},
		{file: "values-kind.yaml", checks: []check{replicas(3), antiAffinity(false), requests("50m", "64Mi"),
			has("Secret/ephemeral-store-tls", "Secret/ephemeral-store-user-myuser", "Secret/ephemeral-store-user-reader", "Secret/ephemeral-store-ca"),
			func(t *testing.T, m *manifests) {
				var cm corev1.ConfigMap
				m.get(t, "ConfigMap", "ephemeral-store-users", &cm)
				assert.JSONEq(t, `{"name":"reader","auth_mode":"certificate","permissions":[{"prefix":"pools/","access":"read"}]}`, cm.Data["reader.json"])
				assert.JSONEq(t, `{"name":"myuser","auth_mode":"certificate"}`, cm.Data["myuser.json"])
			}}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{valuesFiles: []string{tc.file}})
			for _, c := range tc.checks {
				c(t, m)
			}
		})
	}

	// Every chart-testing file renders on its own.
	for _, f := range valuesFiles(t) {
		if !strings.HasPrefix(f, "ci/") {
			continue
		}
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{valuesFiles: []string{f}})
			assert.NotNil(t, m.find("StatefulSet", oldRelease))
		})
	}
}

// TestPodDisruptionBudgetAllowsOnePodDown: by default a drain takes one
// pod at a time, whatever the replica count. With 5 replicas a budget of
// 2 (all that quorum allows) leaves no margin: two drained pods are
// placeholders until their new incarnations catch up, and one more fault
// (a crash, a node lost) during that time is a majority loss that empties
// the store.
func TestPodDisruptionBudgetAllowsOnePodDown(t *testing.T) {
	t.Parallel()
	for _, replicas := range []int{3, 5, 7, 9} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{set: map[string]string{"replicaCount": fmt.Sprint(replicas)}})
			var pdb policyv1.PodDisruptionBudget
			m.get(t, "PodDisruptionBudget", oldRelease, &pdb)
			require.NotNil(t, pdb.Spec.MaxUnavailable)
			assert.Equal(t, 1, pdb.Spec.MaxUnavailable.IntValue())
			assert.Nil(t, pdb.Spec.MinAvailable)
			assert.Equal(t, m.statefulSet(t).Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels)
		})
	}
	// An operator may allow more, up to what keeps a majority.
	for _, tc := range []struct{ replicas, maxUnavailable int }{{5, 2}, {7, 3}, {9, 4}} {
		t.Run(fmt.Sprintf("%d of %d replicas by choice", tc.maxUnavailable, tc.replicas), func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{set: map[string]string{"replicaCount": fmt.Sprint(tc.replicas), "pdb.maxUnavailable": fmt.Sprint(tc.maxUnavailable)}})
			var pdb policyv1.PodDisruptionBudget
			m.get(t, "PodDisruptionBudget", oldRelease, &pdb)
			require.NotNil(t, pdb.Spec.MaxUnavailable)
			assert.Equal(t, tc.maxUnavailable, pdb.Spec.MaxUnavailable.IntValue())
		})
	}
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: map[string]string{"pdb.create": "false"}})
		assert.Empty(t, m.ofKind("PodDisruptionBudget"))
	})
}

func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	store := map[string]string{
		"app.kubernetes.io/name":      "ephemeral-store",
		"app.kubernetes.io/instance":  oldRelease,
		"app.kubernetes.io/component": "store",
	}
	rule := func(np networkingv1.NetworkPolicy, port string) *networkingv1.NetworkPolicyIngressRule {
		for i, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.String() == port {
					return &np.Spec.Ingress[i]
				}
			}
		}
		return nil
	}
	get := func(t *testing.T, o opts) networkingv1.NetworkPolicy {
		var np networkingv1.NetworkPolicy
		render(t, o).get(t, "NetworkPolicy", oldRelease, &np)
		return np
	}

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		np := get(t, opts{})
		assert.Equal(t, store, np.Spec.PodSelector.MatchLabels)
		assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)

		client := rule(np, "client")
		require.NotNil(t, client)
		require.Len(t, client.From, 2)
		assert.Equal(t, map[string]string{"ephemeral-store-client": "true"}, client.From[0].PodSelector.MatchLabels)
		assert.Equal(t, store, client.From[1].PodSelector.MatchLabels)

		peer := rule(np, "peer")
		require.NotNil(t, peer)
		require.Len(t, peer.From, 1, "peers: store pods only")
		assert.Equal(t, store, peer.From[0].PodSelector.MatchLabels)
		assert.Nil(t, peer.From[0].NamespaceSelector)

		probe := rule(np, "probe")
		require.NotNil(t, probe)
		assert.Empty(t, probe.From, "probe port from anywhere by default")
		assert.Len(t, np.Spec.Ingress, 3)
	})
	t.Run("clients by namespace and pod selector", func(t *testing.T) {
		t.Parallel()
		np := get(t, opts{setJSON: map[string]string{
			"networkPolicy.clientNamespaceSelector": `{"matchLabels":{"team":"edge"}}`,
			"networkPolicy.clientPodSelector":       `{"matchLabels":{"app":"proxy"}}`,
			"networkPolicy.probeFrom":               `[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]`,
		}})
		client := rule(np, "client")
		require.Len(t, client.From, 4)
		assert.Equal(t, map[string]string{"app": "proxy"}, client.From[2].PodSelector.MatchLabels)
		assert.Equal(t, map[string]string{"team": "edge"}, client.From[3].NamespaceSelector.MatchLabels)
		probe := rule(np, "probe")
		require.Len(t, probe.From, 1)
		assert.Equal(t, map[string]string{"name": "monitoring"}, probe.From[0].NamespaceSelector.MatchLabels)
	})
	t.Run("allowExternal opens the client port only", func(t *testing.T) {
		t.Parallel()
		np := get(t, opts{set: map[string]string{"networkPolicy.allowExternal": "true"}})
		assert.Empty(t, rule(np, "client").From)
		assert.Len(t, rule(np, "peer").From, 1)
	})
	t.Run("restricted egress", func(t *testing.T) {
		t.Parallel()
		np := get(t, opts{set: map[string]string{"networkPolicy.restrictEgress": "true"}})
		assert.Contains(t, np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		require.Len(t, np.Spec.Egress, 3)
		assert.Equal(t, 53, np.Spec.Egress[0].Ports[0].Port.IntValue())
		assert.Equal(t, 8088, np.Spec.Egress[1].Ports[0].Port.IntValue())
		assert.Equal(t, store, np.Spec.Egress[1].To[0].PodSelector.MatchLabels)
		// The Kubernetes API, where the replica count is read.
		require.Len(t, np.Spec.Egress[2].Ports, 2)
		assert.Equal(t, 443, np.Spec.Egress[2].Ports[0].Port.IntValue())
		assert.Equal(t, 6443, np.Spec.Egress[2].Ports[1].Port.IntValue())
	})
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		assert.Empty(t, render(t, opts{set: map[string]string{"networkPolicy.enabled": "false"}}).ofKind("NetworkPolicy"))
	})
	t.Run("the RESP port admits exactly the client port's clients", func(t *testing.T) {
		t.Parallel()
		assert.Nil(t, rule(get(t, opts{}), "resp"), "no RESP port by default")
		np := get(t, opts{set: map[string]string{"resp.enabled": "true"}})
		resp := rule(np, "resp")
		require.NotNil(t, resp)
		assert.Same(t, rule(np, "client"), resp, "one rule, one list of clients, for both doors")
		assert.Len(t, np.Spec.Ingress, 3)
	})
}

// TestRESPPort: with resp.enabled the pods serve the Redis protocol
// on their own port, named in the container and in the client Service.
func TestRESPPort(t *testing.T) {
	t.Parallel()
	off := render(t, opts{})
	assert.NotContains(t, flags(storeContainer(t, off.statefulSet(t)).Args), "resp-listen")
	var svc corev1.Service
	off.get(t, "Service", oldRelease, &svc)
	assert.Len(t, svc.Spec.Ports, 1)

	on := render(t, opts{set: map[string]string{"resp.enabled": "true", "containerPorts.resp": "16379", "service.respPort": "6380"}})
	c := storeContainer(t, on.statefulSet(t))
	assert.Equal(t, []string{":16379"}, flags(c.Args)["resp-listen"])
	var port *corev1.ContainerPort
	for i, p := range c.Ports {
		if p.Name == "resp" {
			port = &c.Ports[i]
		}
	}
	require.NotNil(t, port, "a container port named resp")
	assert.Equal(t, int32(16379), port.ContainerPort)
	on.get(t, "Service", oldRelease, &svc)
	require.Len(t, svc.Spec.Ports, 2)
	assert.Equal(t, "resp", svc.Spec.Ports[1].Name)
	assert.Equal(t, int32(6380), svc.Spec.Ports[1].Port)
	assert.Equal(t, "resp", svc.Spec.Ports[1].TargetPort.String())
}

func TestMetricsAndServiceMonitor(t *testing.T) {
	t.Parallel()
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{})
		assert.Empty(t, m.ofKind("ServiceMonitor"))
		assert.Nil(t, m.find("Service", "ephemeral-store-metrics"))
	})
	t.Run("on", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: map[string]string{
			"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true",
			"metrics.serviceMonitor.labels.release": "prom",
		}})
		var svc corev1.Service
		m.get(t, "Service", "ephemeral-store-metrics", &svc)
		require.Len(t, svc.Spec.Ports, 1)
		assert.Equal(t, int32(8089), svc.Spec.Ports[0].Port)
		assert.Equal(t, "probe", svc.Spec.Ports[0].TargetPort.String())

		var sm struct {
			APIVersion string `json:"apiVersion"`
			Metadata   struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				Endpoints []struct {
					Port, Path, Scheme, Interval string
				} `json:"endpoints"`
			} `json:"spec"`
		}
		m.get(t, "ServiceMonitor", oldRelease, &sm)
		assert.Equal(t, "monitoring.coreos.com/v1", sm.APIVersion)
		assert.Equal(t, "prom", sm.Metadata.Labels["release"])
		for k, v := range sm.Spec.Selector.MatchLabels {
			assert.Equal(t, v, svc.Labels[k], "the ServiceMonitor selects the metrics Service (%s)", k)
		}
		require.Len(t, sm.Spec.Endpoints, 1)
		assert.Equal(t, "metrics", sm.Spec.Endpoints[0].Port)
		assert.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
		assert.Equal(t, "30s", sm.Spec.Endpoints[0].Interval)
	})
}

func TestImage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		set   map[string]string
		image string
	}{
		{name: "appVersion tag by default", image: "localhost/ephemeral-store:0.1.0"},
		{name: "tag", set: map[string]string{"image.tag": "0.2.0"}, image: "localhost/ephemeral-store:0.2.0"},
		{name: "digest wins", set: map[string]string{"image.tag": "0.2.0", "image.digest": "sha256:" + strings.Repeat("a", 64)}, image: "localhost/ephemeral-store@sha256:" + strings.Repeat("a", 64)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{set: tc.set})
			assert.Equal(t, tc.image, storeContainer(t, m.statefulSet(t)).Image)
			var pod corev1.Pod
			m.get(t, "Pod", "ephemeral-store-test", &pod)
			assert.Equal(t, tc.image, pod.Spec.Containers[0].Image, "helm test uses the store image")
		})
	}
}

func TestHelmTestPodWritesAndReadsWithAUserCertificate(t *testing.T) {
	t.Parallel()
	m := render(t, opts{})
	var pod corev1.Pod
	o := m.find("Pod", "ephemeral-store-test")
	require.NotNil(t, o)
	require.NoError(t, yaml.Unmarshal(o.Raw, &pod))

	assert.Equal(t, "test", pod.Annotations["helm.sh/hook"])
	assert.Equal(t, corev1.RestartPolicyNever, pod.Spec.RestartPolicy)
	assert.False(t, *pod.Spec.AutomountServiceAccountToken)
	assert.Equal(t, "true", pod.Labels["ephemeral-store-client"], "admitted by the NetworkPolicy")

	require.Len(t, pod.Spec.InitContainers, 1)
	require.Len(t, pod.Spec.Containers, 1)
	put, get := pod.Spec.InitContainers[0], pod.Spec.Containers[0]
	assert.Equal(t, "put", put.Args[0])
	assert.Equal(t, "get", get.Args[0])
	common := []string{
		"--endpoints=https://ephemeral-store." + namespace + ".svc.cluster.local:8087",
		"--cert=/etc/ephemeral-store/user/tls.crt",
		"--key=/etc/ephemeral-store/user/tls.key",
		"--cacert=/etc/ephemeral-store/user/ca.crt",
	}
	assert.Equal(t, append(append([]string{"put"}, common...), "helm-test/ephemeral-store", "revision-1"), put.Args)
	assert.Equal(t, append(append([]string{"get"}, common...), "helm-test/ephemeral-store", "--expect=revision-1"), get.Args,
		"the test pod has no shell: get compares the value itself")
	for _, c := range []corev1.Container{put, get} {
		assert.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
		assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
		assert.Equal(t, "user", mounts(c)["/etc/ephemeral-store/user"])
	}
	user := volume(pod.Spec, "user")
	require.NotNil(t, user)
	assert.Equal(t, "ephemeral-store-user-myuser", user.Secret.SecretName)
	assert.Equal(t, map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key", "ca.crt": "ca.crt"}, itemPaths(user))
	assert.NotNil(t, m.find("Secret", user.Secret.SecretName), "the user Secret it mounts is rendered")

	t.Run("existing secret", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: map[string]string{"tests.existingSecret": "my-client"}})
		var pod corev1.Pod
		m.get(t, "Pod", "ephemeral-store-test", &pod)
		assert.Equal(t, "my-client", volume(pod.Spec, "user").Secret.SecretName)
	})
	t.Run("user with a custom secret name", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{setJSON: map[string]string{"users": `[{"name":"myuser","createSecret":true,"secretName":"client-cert"}]`}})
		var pod corev1.Pod
		m.get(t, "Pod", "ephemeral-store-test", &pod)
		assert.Equal(t, "client-cert", volume(pod.Spec, "user").Secret.SecretName)
		assert.NotNil(t, m.find("Secret", "client-cert"))
	})
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		assert.Empty(t, render(t, opts{set: map[string]string{"tests.enabled": "false"}}).ofKind("Pod"))
	})
}
