package chart

// The upgrade contract of the chart README's "Upgrading" section: which
// values roll the store pods (they change the StatefulSet's pod template)
// and which never do, and object names that stay put.

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestUpgradeRollsPodsOnlyForPodTemplateInputs compares the StatefulSet's pod
// template (podTemplate, users_test.go): what the StatefulSet controller
// hashes into the revision that decides a rollout.
func TestUpgradeRollsPodsOnlyForPodTemplateInputs(t *testing.T) {
	t.Parallel()
	base := podTemplate(t, opts{})
	cases := []struct {
		name    string
		set     map[string]string
		setJSON map[string]string
		rolls   bool
	}{
		// Never a restart: the store reloads users, certificates are files it reloads.
		{name: "a user added", setJSON: map[string]string{"users": `[{"name":"myuser","auth_mode":"certificate","createSecret":true},{"name":"reader","permissions":[{"prefix":"pools/","access":"read"}]}]`}},
		{name: "a user's permissions changed", setJSON: map[string]string{"users": `[{"name":"myuser","auth_mode":"certificate","createSecret":true,"permissions":[{"prefix":"","access":"readwrite"}]}]`}},
		{name: "a user's certificate Secret renamed", setJSON: map[string]string{"users": `[{"name":"myuser","createSecret":true,"secretName":"my-cert"}]`}},
		{name: "certificate validity and renewal", set: map[string]string{"tls.certValidityDays": "400", "tls.renewBeforeDays": "60"}},
		{name: "client Service type and annotations", set: map[string]string{"service.type": "NodePort", "service.annotations.a": "b", "headlessService.annotations.c": "d"}},
		{name: "NetworkPolicy", set: map[string]string{"networkPolicy.allowExternal": "true", "networkPolicy.restrictEgress": "true"}},
		{name: "PodDisruptionBudget off", set: map[string]string{"pdb.create": "false"}},
		{name: "metrics, ServiceMonitor, alerts and dashboard", set: map[string]string{"metrics.enabled": "true", "metrics.serviceMonitor.enabled": "true", "metrics.prometheusRule.enabled": "true", "metrics.grafanaDashboard.enabled": "true"}},
		{name: "rollout pacing", set: map[string]string{"minReadySeconds": "30", "updateStrategy.rollingUpdate.partition": "2"}},
		{name: "helm test", set: map[string]string{"tests.enabled": "false"}},
		// The pods read the count from the StatefulSet (--replicas-from):
		// a scale that rolled the pods while the survivors still counted
		// the old replicas lost every key (issue 18).
		{name: "replica count", set: map[string]string{"replicaCount": "7"}},
		{name: "replica count down", set: map[string]string{"replicaCount": "3"}},

		// A new pod template: every pod is replaced, one at a time.
		{name: "image tag", set: map[string]string{"image.tag": "0.2.0"}, rolls: true},
		{name: "image registry", set: map[string]string{"image.registry": "registry.example.com"}, rolls: true},
		{name: "global image registry", set: map[string]string{"global.imageRegistry": "mirror.internal"}, rolls: true},
		{name: "image digest", set: map[string]string{"image.digest": testDigest}, rolls: true},
		{name: "image pull secrets", setJSON: map[string]string{"global.imagePullSecrets": `["site-pull"]`}, rolls: true},
		{name: "a server flag", set: map[string]string{"store.logLevel": "debug"}, rolls: true},
		{name: "quorum-loss timeout", set: map[string]string{"store.quorumLossTimeout": "60s"}, rolls: true},
		{name: "resources", set: map[string]string{"resources.requests.cpu": "2"}, rolls: true},
		{name: "TLS mode", set: map[string]string{"tls.mode": "caSecret"}, rolls: true},
		{name: "extra DNS names", setJSON: map[string]string{"tls.extraDnsNames": `["kv.example.com"]`}, rolls: true},
		{name: "pod annotations", set: map[string]string{"podAnnotations.a": "b"}, rolls: true},
		{name: "common labels", set: map[string]string{"commonLabels.team": "kv"}, rolls: true},
		{name: "extra volumes", setJSON: map[string]string{"extraVolumes": `[{"name":"x","configMap":{"name":"x"}}]`, "extraVolumeMounts": `[{"name":"x","mountPath":"/x","readOnly":true}]`}, rolls: true},
		{name: "anti-affinity", set: map[string]string{"podAntiAffinityPreset": "hard"}, rolls: true},
		{name: "an existing users ConfigMap (another volume source)", set: map[string]string{"existingUsersConfigMap": "site-users"}, rolls: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := podTemplate(t, opts{set: tc.set, setJSON: tc.setJSON})
			if tc.rolls {
				assert.NotEqual(t, base, got, "this change must reach the pod template (and so roll the pods)")
			} else {
				assert.Equal(t, base, got, "this change must not touch the pod template (it would roll every pod)")
			}
		})
	}
}

func TestNoChecksumOfTheUsersOnThePodTemplate(t *testing.T) {
	t.Parallel()
	sts := render(t, opts{}).statefulSet(t)
	var checksums []string
	for k := range sts.Spec.Template.Annotations {
		if strings.HasPrefix(k, "checksum/") {
			checksums = append(checksums, k)
		}
	}
	assert.Equal(t, []string{"checksum/config"}, checksums, "only the server configuration is checksummed; users reload live")
	// The standard labels sit on the pod template too: a new chart version
	// (helm.sh/chart) or appVersion rolls the pods, as the README says.
	assert.Equal(t, "ephemeral-store-0.2.0", sts.Spec.Template.Labels["helm.sh/chart"])
	assert.Equal(t, "0.1.0", sts.Spec.Template.Labels["app.kubernetes.io/version"])
}

func TestObjectNamesStayStableAcrossUpgrades(t *testing.T) {
	t.Parallel()
	for _, release := range []string{oldRelease, "cache"} {
		t.Run(release, func(t *testing.T) {
			t.Parallel()
			before := render(t, opts{release: release}).names()
			after := render(t, opts{release: release,
				set: map[string]string{
					"image.tag": "0.2.0", "replicaCount": "3", "store.logLevel": "debug", "service.type": "NodePort",
					"tls.certValidityDays": "400", "networkPolicy.restrictEgress": "true",
				},
				setJSON: map[string]string{"users": `[{"name":"myuser","createSecret":true},{"name":"reader"}]`},
			}).names()
			for _, name := range before {
				assert.Contains(t, after, name, "an object of the release was renamed or dropped by the upgrade")
			}
		})
	}
}
