//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// TestE2ECertsGenerateModeKeptAcrossUpgrades: in generate mode the chart
// reads its certificates back at every `helm upgrade`. An upgrade that
// re-renders every Secret but rolls no pod (commonAnnotations), then one
// that rolls every pod (store.logLevel is in the pod template's checksum),
// keep the root CA, the server certificate, the user certificates and the
// CA-only Secret byte for byte; the pods serve the same certificate; and
// clients built before (a host client from the user's Secret, an
// in-cluster pod that mounted it) keep reading and writing.
func TestE2ECertsGenerateModeKeptAcrossUpgrades(t *testing.T) {
	c := suite(t, "Certificates across upgrades: generate mode keeps the CA, server and user certificates")
	r := install(t, c, installOptions{Label: "certs"})
	run := strings.ToLower(random.UniqueID())
	names := []string{r.caSecretName(), r.fullname + "-tls", r.userSecretName(testUser), r.userSecretName("reader"), r.fullname + "-ca"}
	before := r.secretsData(t, names)
	served := r.servedSerials(t)
	t.Logf("before the upgrades: Secrets %v; every pod serves serial %s", names, served[r.pod(0)])

	// Clients built now: the host's TLS configuration from the user's Secret,
	// and a pod that mounted the same Secret.
	hostTLS := r.tls
	cl, closeCl := r.tunnel(t, k8s.ResourceTypeService, r.fullname, hostTLS)
	want := writeKeys(t, cl, "the Service (host client built before the upgrades)", "certs/"+run+"/before", 5)
	inside := r.startClientPod(t, "client-"+run, testUser, r.serviceURL(), "certs/", revision(t, cl))
	closeCl()
	inside.mustRun(t, "put", "certs/"+run+"/inside", "before")
	pods := r.identities(t)

	// 1. Every Secret is rendered again, no pod rolls.
	r.upgrade(t, map[string]string{"commonAnnotations.e2e-upgrade": run})
	for _, name := range names {
		s, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, name)
		require.NoError(t, err)
		require.Equal(t, run, s.Annotations["e2e-upgrade"], "Secret %s went through the upgrade (new annotation)", name)
	}
	r.requireSecretsData(t, before, "after an upgrade that re-rendered them")
	requireSamePods(t, r, pods)
	r.requireServed(t, served, "after the upgrade without a roll")
	r.requireClientsWork(t, hostTLS, inside, run, want, "after the upgrade without a roll")

	// 2. Every pod rolls.
	r.upgrade(t, map[string]string{"store.logLevel": "debug"})
	r.waitRolled(t, pods)
	r.requireSecretsData(t, before, "after an upgrade that rolled every pod")
	r.requireServed(t, served, "after the rolling upgrade (new pods)")
	r.requireClientsWork(t, hostTLS, inside, run, want, "after the rolling upgrade")
}

// TestE2ECertsOldDocsCASecret: the old docs' root CA, made with openssl as
// they made it, brought as they brought it: `kubectl create secret tls
// ephemeral-store-secret --cert=rootCA.crt --key=rootCA.key` (keys tls.crt
// and tls.key), and tls.mode=caSecret with tls.ca.create=false and no
// tls.ca.certKey/keyKey overrides. The chart finds the CA under tls.crt and
// tls.key: the pods mint their certificates from it, the chart signs the
// helm test user with it (`helm test` passes), and a user certificate made
// the old docs' way (openssl x509 -req: X.509 v1, no extensions) puts and
// gets; the same kind of certificate for a user not in the list gets 401.
// A `helm upgrade` then leaves the operator's Secret alone and keeps the
// certificates the chart signed with it.
func TestE2ECertsOldDocsCASecret(t *testing.T) {
	c := suite(t, "Certificates across upgrades: the old docs' kubectl create secret tls CA Secret, caSecret mode, openssl X.509 v1 user")
	_, err := exec.LookPath("openssl")
	require.NoError(t, err, "the old docs' certificates are made with the openssl CLI: install openssl")
	run := strings.ToLower(random.UniqueID())
	dir := t.TempDir()
	ssl := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "openssl", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "openssl %s:\n%s", strings.Join(args, " "), out)
		t.Logf("$ openssl %s", strings.Join(args, " "))
	}
	// scripts/gen-openssl-testdata.sh: the old documentation's steps.
	ssl("genrsa", "-out", "rootCA.key", "2048")
	ssl("req", "-x509", "-new", "-nodes", "-key", "rootCA.key", "-sha256", "-days", "3650", "-subj", "/CN=ephemeral-store-ca", "-out", "rootCA.crt")
	user := func(name string) {
		ssl("genrsa", "-out", name+".key", "2048")
		ssl("req", "-new", "-key", name+".key", "-subj", "/CN="+name, "-out", name+".csr")
		ssl("x509", "-req", "-in", name+".csr", "-CA", "rootCA.crt", "-CAkey", "rootCA.key", "-CAcreateserial", "-out", name+".crt", "-days", "3650", "-sha256")
	}
	stranger := "stranger-" + run
	user(testUser)
	user(stranger)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		return b
	}
	rootPEM := read("rootCA.crt")
	root := parseCertPEM(t, rootPEM)
	v1 := parseCertPEM(t, read(testUser+".crt"))
	require.Equal(t, 1, v1.Version, "openssl x509 -req without extensions makes an X.509 v1 certificate")
	require.Empty(t, v1.Extensions, "no extensions")
	t.Logf("openssl made %s (v%d) and %s.crt: X.509 v%d, %d extensions, issuer %q", "rootCA.crt", root.Version, testUser, v1.Version, len(v1.Extensions), v1.Issuer.CommonName)

	caSecret := defaultRelease + "-secret"
	r := install(t, c, installOptions{Label: "oldca", Set: map[string]string{"tls.mode": "caSecret", "tls.ca.create": "false"},
		BeforeInstall: func(r *release) {
			// The old docs' command, as they wrote it.
			require.NoError(t, k8s.RunKubectlContextE(t, t.Context(), r.kubectl, "create", "secret", "tls", caSecret,
				"--cert="+filepath.Join(dir, "rootCA.crt"), "--key="+filepath.Join(dir, "rootCA.key")))
			t.Logf("$ kubectl -n %s create secret tls %s --cert=rootCA.crt --key=rootCA.key", r.ns, caSecret)
		}})
	require.Equal(t, caSecret, r.caSecretName(), "the chart's root CA Secret is the old docs' name")

	// The Secret is the operator's: the chart reads it as it is.
	s, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, caSecret)
	require.NoError(t, err)
	require.Equal(t, corev1.SecretTypeTLS, s.Type)
	require.ElementsMatch(t, []string{"tls.crt", "tls.key"}, sortedKeys(s.Data), "Secret %s keeps the keys kubectl gave it", caSecret)
	items, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), r.kubectl, "get", "statefulset", r.fullname,
		"-o", `jsonpath={range .spec.template.spec.volumes[?(@.name=="ca")].secret.items[*]}{.key}={.path} {end}`)
	require.NoError(t, err)
	require.Equal(t, "tls.crt=rootCA.crt tls.key=rootCA.key", strings.TrimSpace(items), "the pods' CA volume maps the kubectl tls keys")
	t.Logf("Secret %s (%s: tls.crt, tls.key) is mounted as %s", caSecret, s.Type, strings.TrimSpace(items))

	// The chart signed the helm test user with that CA (install ran helm test with it).
	chartUser := r.userSecret(t, testUser)
	require.Equal(t, string(rootPEM), string(chartUser.Data["ca.crt"]), "the chart's user Secret carries the openssl CA")
	roots := x509.NewCertPool()
	roots.AddCert(root)
	_, err = parseCertPEM(t, chartUser.Data["tls.crt"]).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err, "the chart's user certificate chains to the openssl CA")

	// Every pod minted its serving certificate from that CA.
	for i := range r.replicas {
		p := r.newPortProbe(t, i, clientPort)
		out := p.leaf(t, r.tls)
		p.close()
		require.True(t, out.HandshakeDone, "%s: %s", r.pod(i), out)
		_, err := out.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: r.serviceDNS()})
		require.NoError(t, err, "%s serves a certificate of the openssl CA for %s", r.pod(i), r.serviceDNS())
		t.Logf("%s serves CN %q, issuer %q, valid for %s", r.pod(i), out.Leaf.Subject.CommonName, out.Leaf.Issuer.CommonName, r.serviceDNS())
	}

	// The openssl X.509 v1 user certificate: puts and gets, through the Service and a pod.
	v1TLS := r.tlsConfig(t, read(testUser+".crt"), read(testUser+".key"), rootPEM)
	key := "oldca/" + run
	svc, _ := r.tunnel(t, k8s.ResourceTypeService, r.fullname, v1TLS)
	_, err = svc.Put(t.Context(), key, []byte("v1 certificate"))
	require.NoError(t, err, "put %s with the openssl v1 certificate of %s", key, testUser)
	pod1, _ := r.tunnel(t, k8s.ResourceTypePod, r.pod(1), v1TLS)
	kv, err := pod1.Get(t.Context(), key)
	require.NoError(t, err, "get %s with the openssl v1 certificate through %s", key, r.pod(1))
	require.Equal(t, "v1 certificate", string(kv.Value))
	t.Logf("the openssl X.509 v1 certificate of %s put %s through the Service and got it through %s", testUser, key, r.pod(1))

	// Twin: the same kind of certificate for a user not in the list is refused.
	strangerTLS := r.tlsConfig(t, read(stranger+".crt"), read(stranger+".key"), rootPEM)
	p := r.newPortProbe(t, 0, clientPort)
	out := p.request(t, strangerTLS, "/v1/kv/"+key)
	p.close()
	require.Equal(t, 401, out.Status, "openssl v1 certificate of %s (not in the users list): %s", stranger, out)
	require.Equal(t, "unauthenticated", out.Code, "%s", out)
	t.Logf("the openssl v1 certificate of %s (not a user) is refused: %s", stranger, out)

	// helm upgrade reads the operator's Secret again and changes nothing in it.
	kept := r.secretsData(t, []string{caSecret, r.userSecretName(testUser), r.fullname + "-ca"})
	pods := r.identities(t)
	r.upgrade(t, map[string]string{"commonAnnotations.e2e-upgrade": run})
	r.requireSecretsData(t, kept, "after helm upgrade")
	s, err = k8s.GetSecretContextE(t, t.Context(), r.kubectl, caSecret)
	require.NoError(t, err)
	require.Empty(t, s.Annotations["meta.helm.sh/release-name"], "the chart must not take over the operator's Secret %s", caSecret)
	require.NotEqual(t, run, s.Annotations["e2e-upgrade"], "the chart must not render the operator's Secret %s", caSecret)
	requireSamePods(t, r, pods)
	kv, err = svc.Get(t.Context(), key)
	if err != nil { // the Service tunnel's pod is the same, but a tunnel may break: one more try on a new one
		svc, _ = r.tunnel(t, k8s.ResourceTypeService, r.fullname, v1TLS)
		kv, err = svc.Get(t.Context(), key)
	}
	require.NoError(t, err, "get %s with the openssl v1 certificate after helm upgrade", key)
	require.Equal(t, "v1 certificate", string(kv.Value))
	t.Logf("after helm upgrade: %s untouched (not the chart's), the chart's user Secret the same, the openssl v1 user still reads %s", caSecret, key)
}

// secretsData reads the data of each named Secret.
func (r *release) secretsData(t *testing.T, names []string) map[string]map[string][]byte {
	t.Helper()
	out := map[string]map[string][]byte{}
	for _, name := range names {
		s, err := k8s.GetSecretContextE(t, t.Context(), r.kubectl, name)
		require.NoError(t, err, "Secret %s", name)
		require.NotEmpty(t, s.Data, "Secret %s is empty", name)
		out[name] = s.Data
	}
	return out
}

// requireSecretsData fails unless every Secret of before holds the same bytes.
func (r *release) requireSecretsData(t *testing.T, before map[string]map[string][]byte, when string) {
	t.Helper()
	var names []string
	for name := range before {
		names = append(names, name)
	}
	now := r.secretsData(t, names)
	for _, name := range names {
		require.ElementsMatch(t, sortedKeys(before[name]), sortedKeys(now[name]), "Secret %s keys %s", name, when)
		for k, v := range before[name] {
			require.Equal(t, string(v), string(now[name][k]), "Secret %s key %s changed %s", name, k, when)
		}
	}
	t.Logf("%s: Secrets %v hold the same bytes as before", when, names)
}

// servedSerials is the serial of the certificate each store pod serves on
// its client port.
func (r *release) servedSerials(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := range r.replicas {
		p := r.newPortProbe(t, i, clientPort)
		o := p.leaf(t, r.tls)
		p.close()
		require.True(t, o.HandshakeDone, "%s: %s", r.pod(i), o)
		out[r.pod(i)] = fmt.Sprintf("%x", o.Leaf.SerialNumber)
	}
	return out
}

func (r *release) requireServed(t *testing.T, before map[string]string, when string) {
	t.Helper()
	require.Equal(t, before, r.servedSerials(t), "served certificates %s", when)
	t.Logf("%s: every pod serves the same certificate as before (%v)", when, before)
}

// requireClientsWork reads the keys written before and writes new ones with
// the host client configuration built before, and through the client pod
// started before.
func (r *release) requireClientsWork(t *testing.T, hostTLS *tls.Config, inside *clientPod, run string, want map[string][]byte, when string) {
	t.Helper()
	cl, closeCl := r.tunnel(t, k8s.ResourceTypeService, r.fullname, hostTLS)
	defer closeCl()
	requireKeys(t, cl, "the Service with the host client built before, "+when, want)
	_, err := cl.Put(t.Context(), fmt.Sprintf("certs/%s/%d", run, time.Now().UnixNano()), []byte(when))
	require.NoError(t, err, "put with the host client built before, %s", when)
	require.NoError(t, k8s.WaitUntilPodAvailableContextE(t, t.Context(), r.kubectl, inside.name, pollTries, pollEvery))
	out := inside.mustRun(t, "get", "certs/"+run+"/inside", "--expect", "before")
	inside.mustRun(t, "put", "certs/"+run+"/inside-"+fmt.Sprint(time.Now().Unix()), when)
	t.Logf("%s: the host client and client pod %s (both built before the upgrades) read and write: %s", when, inside.name, strings.TrimSpace(out))
}

// waitRolled waits until every store pod is a new pod (another UID than in
// before) and Ready: the rollout is complete.
func (r *release) waitRolled(t *testing.T, before map[string]string) {
	t.Helper()
	_, err := retry.DoWithRetryContextE(t, t.Context(), "every store pod replaced by the rollout", pollTries, pollEvery, func() (string, error) {
		pods := r.storePods(t)
		if len(pods) != r.replicas {
			return "", fmt.Errorf("%d store pods, want %d", len(pods), r.replicas)
		}
		for name, p := range pods {
			if before[name] == podIdentity(p) || strings.HasPrefix(before[name], fmt.Sprintf("uid=%s ", p.UID)) {
				return "", fmt.Errorf("%s is still the pod of before (%s)", name, before[name])
			}
			if !k8s.IsPodAvailable(&p) {
				return "", fmt.Errorf("%s is not Ready", name)
			}
		}
		return "", nil
	})
	require.NoError(t, err)
	t.Logf("the upgrade rolled every store pod: before %v, now %v", before, r.identities(t))
}
