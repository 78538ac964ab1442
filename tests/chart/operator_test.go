package chart

// Values operators of a site set around the store: registries and pull
// Secrets of air-gapped sites, extra volumes, extra NetworkPolicy rules,
// ServiceMonitor relabelings and the client Service's exposure.

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

var testDigest = "sha256:" + strings.Repeat("b", 64)

func TestImageRegistryAndGlobalRegistry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		set     map[string]string
		setJSON map[string]string
		files   []string
		image   string
	}{
		{name: "defaults are unchanged", image: "localhost/ephemeral-store:0.1.0"},
		{name: "values-kind.yaml", files: []string{"values-kind.yaml"}, image: "localhost/ephemeral-store:0.1.0"},
		{name: "image.registry", set: map[string]string{"image.registry": "registry.example.com:5000"}, image: "registry.example.com:5000/ephemeral-store:0.1.0"},
		{name: "registry with a path", set: map[string]string{"image.registry": "mirror.example.com/store", "image.repository": "team/ephemeral-store"}, image: "mirror.example.com/store/team/ephemeral-store:0.1.0"},
		{name: "global.imageRegistry wins over image.registry", set: map[string]string{"image.registry": "registry.example.com", "global.imageRegistry": "mirror.internal"}, image: "mirror.internal/ephemeral-store:0.1.0"},
		{name: "global.imageRegistry with the default image.registry", set: map[string]string{"global.imageRegistry": "mirror.internal:443"}, image: "mirror.internal:443/ephemeral-store:0.1.0"},
		{name: "empty global.imageRegistry leaves image.registry", set: map[string]string{"global.imageRegistry": "", "image.registry": "registry.example.com"}, image: "registry.example.com/ephemeral-store:0.1.0"},
		{name: "no registry: the repository as written", setJSON: map[string]string{"image.registry": `""`}, set: map[string]string{"image.repository": "registry.example.com/kv/ephemeral-store"}, image: "registry.example.com/kv/ephemeral-store:0.1.0"},
		{name: "tag", set: map[string]string{"image.registry": "registry.example.com", "image.tag": "0.2.0"}, image: "registry.example.com/ephemeral-store:0.2.0"},
		{name: "digest with the global registry", set: map[string]string{"global.imageRegistry": "mirror.internal", "image.tag": "0.2.0", "image.digest": testDigest}, image: "mirror.internal/ephemeral-store@" + testDigest},
		{name: "a parent chart's other globals are accepted", set: map[string]string{"global.storageClass": "fast", "global.imageRegistry": "mirror.internal"}, image: "mirror.internal/ephemeral-store:0.1.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{set: tc.set, setJSON: tc.setJSON, valuesFiles: tc.files})
			assert.Equal(t, tc.image, storeContainer(t, m.statefulSet(t)).Image)
			var pod corev1.Pod
			m.get(t, "Pod", "ephemeral-store-test", &pod)
			for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
				assert.Equal(t, tc.image, c.Image, "helm test container %s uses the store image", c.Name)
			}
		})
	}
}

func TestImagePullSecretsMergeGlobalAndChart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		setJSON map[string]string
		want    []string
	}{
		{name: "none by default"},
		{name: "chart only", setJSON: map[string]string{"image.pullSecrets": `["regcred"]`}, want: []string{"regcred"}},
		{name: "global only, as objects", setJSON: map[string]string{"global.imagePullSecrets": `[{"name":"site-pull"}]`}, want: []string{"site-pull"}},
		{
			name:    "global first, then the chart's, duplicates once",
			setJSON: map[string]string{"global.imagePullSecrets": `["site-pull",{"name":"regcred"}]`, "image.pullSecrets": `[{"name":"regcred"},"extra","site-pull"]`},
			want:    []string{"site-pull", "regcred", "extra"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, opts{setJSON: tc.setJSON})
			var pod corev1.Pod
			m.get(t, "Pod", "ephemeral-store-test", &pod)
			for name, refs := range map[string][]corev1.LocalObjectReference{
				"StatefulSet":   m.statefulSet(t).Spec.Template.Spec.ImagePullSecrets,
				"helm test pod": pod.Spec.ImagePullSecrets,
			} {
				var got []string
				for _, r := range refs {
					got = append(got, r.Name)
				}
				assert.Equal(t, tc.want, got, name)
			}
		})
	}
}

func TestExtraVolumesAndMounts(t *testing.T) {
	t.Parallel()
	m := render(t, opts{setJSON: map[string]string{
		"extraVolumes":      `[{"name":"site-ca","configMap":{"name":"site-ca-bundle"}},{"name":"vault","csi":{"driver":"secrets-store.csi.k8s.io","readOnly":true}}]`,
		"extraVolumeMounts": `[{"name":"site-ca","mountPath":"/etc/site-ca","readOnly":true},{"name":"vault","mountPath":"/mnt/vault","readOnly":true}]`,
	}})
	sts := m.statefulSet(t)
	spec := sts.Spec.Template.Spec
	c := storeContainer(t, sts)

	ca := volume(spec, "site-ca")
	require.NotNil(t, ca)
	require.NotNil(t, ca.ConfigMap)
	assert.Equal(t, "site-ca-bundle", ca.ConfigMap.Name)
	vault := volume(spec, "vault")
	require.NotNil(t, vault)
	require.NotNil(t, vault.CSI)
	assert.Equal(t, "secrets-store.csi.k8s.io", vault.CSI.Driver)

	got := mounts(c)
	assert.Equal(t, "site-ca", got["/etc/site-ca"])
	assert.Equal(t, "vault", got["/mnt/vault"])
	// The chart's own volumes stay, first.
	assert.Equal(t, "users", spec.Volumes[0].Name)
	assert.Equal(t, "users", got["/etc/ephemeral-store/users"])
	assert.NotNil(t, volume(spec, "tls"))

	t.Run("none by default", func(t *testing.T) {
		t.Parallel()
		spec := render(t, opts{}).statefulSet(t).Spec.Template.Spec
		for _, v := range spec.Volumes {
			assert.Contains(t, []string{"users", "tls"}, v.Name)
		}
	})
}

func TestNetworkPolicyExtraRules(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, o opts) networkingv1.NetworkPolicy {
		var np networkingv1.NetworkPolicy
		render(t, o).get(t, "NetworkPolicy", oldRelease, &np)
		return np
	}
	t.Run("extraIngress is appended after the chart's three rules", func(t *testing.T) {
		t.Parallel()
		np := get(t, opts{setJSON: map[string]string{
			"networkPolicy.extraIngress": `[{"from":[{"ipBlock":{"cidr":"192.0.2.0/24"}}],"ports":[{"port":"client","protocol":"TCP"}]}]`,
		}})
		require.Len(t, np.Spec.Ingress, 4)
		extra := np.Spec.Ingress[3]
		require.Len(t, extra.From, 1)
		require.NotNil(t, extra.From[0].IPBlock)
		assert.Equal(t, "192.0.2.0/24", extra.From[0].IPBlock.CIDR)
		assert.Equal(t, "client", extra.Ports[0].Port.String())
		assert.Len(t, np.Spec.Ingress[1].From, 1, "the peer rule keeps admitting store pods only")
	})
	t.Run("extraEgress is appended after DNS, peers and the Kubernetes API", func(t *testing.T) {
		t.Parallel()
		np := get(t, opts{set: map[string]string{"networkPolicy.restrictEgress": "true"}, setJSON: map[string]string{
			"networkPolicy.extraEgress": `[{"to":[{"ipBlock":{"cidr":"10.0.0.10/32"}}],"ports":[{"port":8200,"protocol":"TCP"}]}]`,
		}})
		assert.Contains(t, np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		require.Len(t, np.Spec.Egress, 4)
		assert.Equal(t, "10.0.0.10/32", np.Spec.Egress[3].To[0].IPBlock.CIDR)
		assert.Equal(t, 8200, np.Spec.Egress[3].Ports[0].Port.IntValue())
	})
	t.Run("none by default", func(t *testing.T) {
		t.Parallel()
		np := get(t, opts{})
		assert.Len(t, np.Spec.Ingress, 3)
		assert.Empty(t, np.Spec.Egress)
	})
}

func TestServiceMonitorRelabelings(t *testing.T) {
	t.Parallel()
	type endpoint struct {
		Relabelings       []map[string]any `json:"relabelings"`
		MetricRelabelings []map[string]any `json:"metricRelabelings"`
	}
	var sm struct {
		Spec struct {
			Endpoints []endpoint `json:"endpoints"`
		} `json:"spec"`
	}
	m := render(t, opts{
		set: map[string]string{"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true"},
		setJSON: map[string]string{
			"metrics.serviceMonitor.relabelings":       `[{"sourceLabels":["__meta_kubernetes_pod_node_name"],"targetLabel":"node","action":"replace"}]`,
			"metrics.serviceMonitor.metricRelabelings": `[{"sourceLabels":["__name__"],"regex":"go_gc_.*","action":"drop"}]`,
		},
	})
	m.get(t, "ServiceMonitor", oldRelease, &sm)
	require.Len(t, sm.Spec.Endpoints, 1)
	ep := sm.Spec.Endpoints[0]
	require.Len(t, ep.Relabelings, 1)
	assert.Equal(t, "node", ep.Relabelings[0]["targetLabel"])
	require.Len(t, ep.MetricRelabelings, 1)
	assert.Equal(t, "drop", ep.MetricRelabelings[0]["action"])
	assert.Equal(t, "go_gc_.*", ep.MetricRelabelings[0]["regex"])

	t.Run("none by default", func(t *testing.T) {
		t.Parallel()
		m := render(t, opts{set: map[string]string{"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true"}})
		o := m.find("ServiceMonitor", oldRelease)
		require.NotNil(t, o)
		assert.NotContains(t, string(o.Raw), "relabelings")
		assert.NotContains(t, string(o.Raw), "metricRelabelings")
	})
}

func TestClientServiceExposure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		set      map[string]string
		setJSON  map[string]string
		typ      corev1.ServiceType
		nodePort int32
		ranges   []string
	}{
		{name: "ClusterIP by default", typ: corev1.ServiceTypeClusterIP},
		{name: "NodePort picked by Kubernetes", set: map[string]string{"service.type": "NodePort"}, typ: corev1.ServiceTypeNodePort},
		{name: "NodePort fixed", set: map[string]string{"service.type": "NodePort", "service.nodePort": "30087"}, typ: corev1.ServiceTypeNodePort, nodePort: 30087},
		{
			name:    "LoadBalancer with source ranges and a node port",
			set:     map[string]string{"service.type": "LoadBalancer", "service.nodePort": "30087"},
			setJSON: map[string]string{"service.loadBalancerSourceRanges": `["192.0.2.0/24","2001:db8::/32"]`},
			typ:     corev1.ServiceTypeLoadBalancer, nodePort: 30087, ranges: []string{"192.0.2.0/24", "2001:db8::/32"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var svc corev1.Service
			render(t, opts{set: tc.set, setJSON: tc.setJSON}).get(t, "Service", oldRelease, &svc)
			assert.Equal(t, tc.typ, svc.Spec.Type)
			require.Len(t, svc.Spec.Ports, 1)
			assert.Equal(t, tc.nodePort, svc.Spec.Ports[0].NodePort)
			assert.Equal(t, int32(8087), svc.Spec.Ports[0].Port)
			assert.Equal(t, tc.ranges, svc.Spec.LoadBalancerSourceRanges)
		})
	}
}

func TestOperatorValuesRejectNonsense(t *testing.T) {
	t.Parallel()
	cases := []valuesCase{
		// values.schema.json.
		{name: "registry with a scheme", set: map[string]string{"image.registry": "https://registry.example.com"}, want: []string{"/image/registry"}},
		{name: "global registry with a scheme", set: map[string]string{"global.imageRegistry": "https://mirror"}, want: []string{"/global/imageRegistry"}},
		{name: "pull secret without a name", setJSON: map[string]string{"image.pullSecrets": `[{"secret":"x"}]`}, want: []string{"/image/pullSecrets/0"}},
		{name: "node port out of range", set: map[string]string{"service.type": "NodePort", "service.nodePort": "70000"}, want: []string{"/service/nodePort", "maximum"}},
		{name: "source range not a CIDR", set: map[string]string{"service.type": "LoadBalancer"}, setJSON: map[string]string{"service.loadBalancerSourceRanges": `["192.0.2.1"]`}, want: []string{"/service/loadBalancerSourceRanges/0"}},
		{name: "extra mount without a path", setJSON: map[string]string{"extraVolumes": `[{"name":"a","configMap":{"name":"a"}}]`, "extraVolumeMounts": `[{"name":"a"}]`}, want: []string{"/extraVolumeMounts/0", "mountPath"}},
		{name: "memory limit ratio above 1", set: map[string]string{"store.memoryLimitRatio": "1.5"}, want: []string{"/store/memoryLimitRatio"}},
		{name: "quota below -1", set: map[string]string{"store.quotaBytes": "-2"}, want: []string{"/store/quotaBytes", "minimum"}},
		{name: "rollingUpdate.maxUnavailable", setJSON: map[string]string{"updateStrategy.rollingUpdate": `{"maxUnavailable":2}`}, want: []string{"/updateStrategy/rollingUpdate", "maxUnavailable"}},

		// The chart's own validation.
		{name: "nodePort with ClusterIP", set: map[string]string{"service.nodePort": "30087"}, want: []string{"service.nodePort: 30087 is set but service.type=ClusterIP", "Fix:"}},
		{name: "source ranges without a LoadBalancer", set: map[string]string{"service.type": "NodePort"}, setJSON: map[string]string{"service.loadBalancerSourceRanges": `["192.0.2.0/24"]`}, want: []string{"service.loadBalancerSourceRanges:", "service.type=NodePort", "Fix:"}},
		{name: "repository still holding the registry", set: map[string]string{"image.repository": "localhost/ephemeral-store"}, want: []string{`image.repository: "localhost/ephemeral-store" starts with a registry`, "localhost/localhost/ephemeral-store:0.1.0", "Fix: set image.registry=localhost and image.repository=ephemeral-store"}},
		{name: "0.1.0's Docker Hub repository next to the localhost registry", set: map[string]string{"image.repository": "myorg/ephemeral-store"}, want: []string{`image.repository: "myorg/ephemeral-store" with image.registry=localhost`, "localhost/myorg/ephemeral-store:0.1.0", "set image.registry to the registry that holds myorg/ephemeral-store"}},
		{name: "repository with a registry host under a global registry", set: map[string]string{"global.imageRegistry": "mirror.internal", "image.repository": "registry.example.com/ephemeral-store"}, want: []string{"image.repository:", "mirror.internal/registry.example.com/ephemeral-store", "Fix:"}},
		{name: "extraEgress without restricted egress", setJSON: map[string]string{"networkPolicy.extraEgress": `[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}]}]`}, want: []string{"networkPolicy.extraEgress:", "Fix: set networkPolicy.restrictEgress=true"}},
		{name: "persistent extra volume", setJSON: map[string]string{"extraVolumes": `[{"name":"data","persistentVolumeClaim":{"claimName":"data"}}]`}, want: []string{`extraVolumes[0]: "data" is a volume of type persistentVolumeClaim`, "never persisted", "Fix:"}},
		{name: "hostPath extra volume", setJSON: map[string]string{"extraVolumes": `[{"name":"host","hostPath":{"path":"/var"}}]`}, want: []string{`extraVolumes[0]: "host" is a volume of type hostPath`}},
		{name: "ephemeral extra volume", setJSON: map[string]string{"extraVolumes": `[{"name":"scratch","ephemeral":{"volumeClaimTemplate":{"spec":{}}}}]`}, want: []string{`extraVolumes[0]: "scratch" is a volume of type ephemeral`}},
		{name: "extra volume named like the chart's", setJSON: map[string]string{"extraVolumes": `[{"name":"users","configMap":{"name":"x"}}]`}, want: []string{`extraVolumes[0].name: "users" is a volume of the chart`, "Fix:"}},
		{name: "extra volume twice", setJSON: map[string]string{"extraVolumes": `[{"name":"a","configMap":{"name":"x"}},{"name":"a","configMap":{"name":"y"}}]`}, want: []string{`extraVolumes[1].name: "a" is listed twice`}},
		{name: "mount of an unknown volume", setJSON: map[string]string{"extraVolumeMounts": `[{"name":"ghost","mountPath":"/x"}]`}, want: []string{`extraVolumeMounts[0].name: "ghost" names no volume`, "Fix:"}},
	}
	requireRefused(t, cases)
}

// The twins of TestOperatorValuesRejectNonsense: values next to the refused ones render.
func TestOperatorValuesNextToTheRejectedOnesRender(t *testing.T) {
	t.Parallel()
	cases := []valuesCase{
		{name: "node port with NodePort", set: map[string]string{"service.type": "NodePort", "service.nodePort": "30087"}},
		{name: "source ranges with a LoadBalancer", set: map[string]string{"service.type": "LoadBalancer"}, setJSON: map[string]string{"service.loadBalancerSourceRanges": `["192.0.2.0/24"]`}},
		{name: "repository with a namespace under a registry", set: map[string]string{"image.registry": "registry.example.com", "image.repository": "kv/ephemeral-store"}},
		{name: "repository with a registry and no image.registry", setJSON: map[string]string{"image.registry": `""`}, set: map[string]string{"image.repository": "localhost/ephemeral-store"}},
		{name: "extraEgress with restricted egress", set: map[string]string{"networkPolicy.restrictEgress": "true"}, setJSON: map[string]string{"networkPolicy.extraEgress": `[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}]}]`}},
		{name: "extraEgress while the NetworkPolicy is off", set: map[string]string{"networkPolicy.enabled": "false"}, setJSON: map[string]string{"networkPolicy.extraEgress": `[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}]}]`}},
		{name: "secret, projected and emptyDir extra volumes", setJSON: map[string]string{
			"extraVolumes":      `[{"name":"s","secret":{"secretName":"s"}},{"name":"p","projected":{"sources":[]}},{"name":"tmp","emptyDir":{"medium":"Memory"}}]`,
			"extraVolumeMounts": `[{"name":"s","mountPath":"/s","readOnly":true},{"name":"p","mountPath":"/p","readOnly":true}]`,
		}},
		{name: "rollingUpdate partition", set: map[string]string{"updateStrategy.rollingUpdate.partition": "3"}},
		{name: "OnDelete drops rollingUpdate", set: map[string]string{"updateStrategy.type": "OnDelete"}},
	}
	requireRendered(t, cases)
}

func TestUpdateStrategy(t *testing.T) {
	t.Parallel()
	sts := render(t, opts{}).statefulSet(t)
	assert.Equal(t, "RollingUpdate", string(sts.Spec.UpdateStrategy.Type))
	require.NotNil(t, sts.Spec.UpdateStrategy.RollingUpdate)
	require.NotNil(t, sts.Spec.UpdateStrategy.RollingUpdate.Partition)
	assert.Equal(t, int32(0), *sts.Spec.UpdateStrategy.RollingUpdate.Partition)
	assert.Nil(t, sts.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, "one pod at a time")

	canary := render(t, opts{set: map[string]string{"updateStrategy.rollingUpdate.partition": "4"}}).statefulSet(t)
	assert.Equal(t, int32(4), *canary.Spec.UpdateStrategy.RollingUpdate.Partition)

	onDelete := render(t, opts{set: map[string]string{"updateStrategy.type": "OnDelete"}}).statefulSet(t)
	assert.Equal(t, "OnDelete", string(onDelete.Spec.UpdateStrategy.Type))
	assert.Nil(t, onDelete.Spec.UpdateStrategy.RollingUpdate, "the API refuses rollingUpdate with OnDelete")
}

func TestNotesWarnWhenTheNetworkPolicyDropsOutsideClients(t *testing.T) {
	t.Parallel()
	chart := notesChart(t)
	const warning = "clients outside it are dropped"
	cases := []struct {
		name    string
		set     map[string]string
		setJSON map[string]string
		warns   bool
	}{
		{name: "LoadBalancer behind the default NetworkPolicy", set: map[string]string{"service.type": "LoadBalancer"}, warns: true},
		{name: "NodePort behind the default NetworkPolicy", set: map[string]string{"service.type": "NodePort"}, warns: true},
		{name: "LoadBalancer with extraIngress", set: map[string]string{"service.type": "LoadBalancer"}, setJSON: map[string]string{"networkPolicy.extraIngress": `[{"from":[{"ipBlock":{"cidr":"192.0.2.0/24"}}]}]`}},
		{name: "LoadBalancer with allowExternal", set: map[string]string{"service.type": "LoadBalancer", "networkPolicy.allowExternal": "true"}},
		{name: "ClusterIP", set: map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			notes := renderNotes(t, chart, opts{set: tc.set, setJSON: tc.setJSON})
			if tc.warns {
				assert.Contains(t, notes, warning)
				assert.Contains(t, notes, "networkPolicy.extraIngress")
			} else {
				assert.NotContains(t, notes, warning)
			}
		})
	}
}

// TestMemoryLimitReachesGo: with a memory limit, the pod passes it to serve
// through the downward API with the ratio, for Go's soft memory limit and
// the data quota (a ratio of 0 leaves Go's default, the quota still needs
// the limit); with none (the downward API would give the node's memory)
// nothing is passed.
func TestMemoryLimitReachesGo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		o         opts
		wantRatio string // "" when nothing may be passed
	}{
		{"default 1Gi limit", opts{}, "0.9"},
		{"another ratio", opts{set: map[string]string{"store.memoryLimitRatio": "0.75"}}, "0.75"},
		{"ratio 0", opts{set: map[string]string{"store.memoryLimitRatio": "0"}}, "0"},
		{"no limits", opts{set: map[string]string{"resources.limits": "null"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := render(t, tc.o).statefulSet(t).Spec.Template.Spec.Containers[0]
			var env *corev1.EnvVar
			for i := range c.Env {
				if c.Env[i].Name == "ES_MEMORY_LIMIT" {
					env = &c.Env[i]
				}
			}
			ratioArg := ""
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "--memory-limit-ratio="); ok {
					ratioArg = v
				}
			}
			assert.Equal(t, tc.wantRatio, ratioArg)
			if tc.wantRatio == "" {
				assert.Nil(t, env, "ES_MEMORY_LIMIT without a memory limit")
				return
			}
			require.NotNil(t, env, "ES_MEMORY_LIMIT")
			require.NotNil(t, env.ValueFrom)
			ref := env.ValueFrom.ResourceFieldRef
			require.NotNil(t, ref)
			assert.Equal(t, c.Name, ref.ContainerName)
			assert.Equal(t, "limits.memory", ref.Resource)
			assert.Equal(t, "1", ref.Divisor.String())
		})
	}
}

// TestQuotaBytesReachesServe: store.quotaBytes is passed only when set; the
// default lets serve derive the quota from the memory limit.
func TestQuotaBytesReachesServe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, set, want string // want "": no --quota-bytes
	}{
		{"default: derived from the memory limit", "", ""},
		{"explicit", "100000000", "--quota-bytes=100000000"},
		{"off", "-1", "--quota-bytes=-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := opts{}
			if tc.set != "" {
				o.set = map[string]string{"store.quotaBytes": tc.set}
			}
			var got string
			for _, a := range render(t, o).statefulSet(t).Spec.Template.Spec.Containers[0].Args {
				if strings.HasPrefix(a, "--quota-bytes=") {
					got = a
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
