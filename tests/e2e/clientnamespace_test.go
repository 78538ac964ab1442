//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
)

// aspUser is the user whose certificate the chart puts into the client's
// namespace, as the Application Services Proxy's in kube-system.
const aspUser = "asp"

// TestE2EClientInItsOwnNamespace: a client in a namespace of its own (the old
// deployment's Application Services Proxy in kube-system, the store
// elsewhere) gets in with only what the chart created there: the user's
// certificate Secret (users[].namespace) and the old docs' CA-only Secret
// ephemeral-store-user-rootca-cert (rootCA.crt). The user without a namespace
// gets a certificate of its own in each of clientNamespaces (the release's,
// for helm test, and the client's), and only it. The NetworkPolicy admits
// the labelled pod of that namespace and drops an unlabelled one beside it.
// Then `helm upgrade` renews the generated certificates (tls.renewBeforeDays
// above their validity: every certificate is "about to expire"); the kubelet
// updates the client's mounted Secret in place, the client's next command
// reads the new files, and its watch stream opened before goes on. Last, with
// the NetworkPolicy deleted, the unlabelled pod connects: the drop was the policy's.
func TestE2EClientInItsOwnNamespace(t *testing.T) {
	c := suite(t, "client in its own namespace")
	ctx := t.Context()

	// The client namespace exists before the release (as kube-system does)
	// and is deleted after it: registered first, this cleanup runs last.
	clientNs := "e2e-clientns-app-" + strings.ToLower(random.UniqueID())
	clientKubectl := c.KubectlOptions(clientNs)
	require.NoError(t, k8s.CreateNamespaceContextE(t, ctx, clientKubectl, clientNs))
	t.Cleanup(func() {
		if keep(t) {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		t.Logf("cleanup: deleting client namespace %s", clientNs)
		if err := k8s.DeleteNamespaceContextE(t, cctx, clientKubectl, clientNs); err != nil {
			t.Errorf("cleanup: delete namespace %s: %v", clientNs, err)
		}
	})

	// The release namespace is named before the install: clientNamespaces lists it.
	storeNs := "e2e-clientns-" + strings.ToLower(random.UniqueID())
	values := filepath.Join(t.TempDir(), "client-namespace-values.yaml")
	require.NoError(t, os.WriteFile(values, []byte(fmt.Sprintf(`clientNamespaces: [%s, %s]
users:
  - name: myuser
    auth_mode: certificate
    createSecret: true
  - name: %s
    auth_mode: certificate
    createSecret: true
    namespace: %s
    permissions:
      - prefix: asp/
        access: readwrite
networkPolicy:
  enabled: true
  allowExternal: false
`, storeNs, clientNs, aspUser, clientNs)), 0o644))
	r := install(t, c, installOptions{Label: "clientns", Namespace: storeNs, ValuesFiles: []string{values}})

	// What the chart created in the client namespace, and nothing else used.
	userSecret := r.userSecretName(aspUser)
	caOnly := r.fullname + "-user-rootca-cert"
	first, err := k8s.GetSecretContextE(t, ctx, clientKubectl, userSecret)
	require.NoError(t, err, "the chart made no user Secret %s in %s", userSecret, clientNs)
	ca, err := k8s.GetSecretContextE(t, ctx, clientKubectl, caOnly)
	require.NoError(t, err, "the chart made no CA-only Secret %s in %s", caOnly, clientNs)
	require.Equal(t, []string{"rootCA.crt"}, sortedKeys(ca.Data), "the CA-only Secret holds the CA certificate and no key")
	rootCA := parseCertPEM(t, ca.Data["rootCA.crt"])
	require.True(t, rootCA.IsCA)
	firstCert := parseCertPEM(t, first.Data["tls.crt"])
	require.Equal(t, aspUser, firstCert.Subject.CommonName)
	verifyClientCert(t, firstCert, rootCA)
	t.Logf("in %s: %s (CN %s, NotAfter %s, serial %s) and %s (rootCA.crt only)", clientNs, userSecret,
		firstCert.Subject.CommonName, firstCert.NotAfter.Format(time.RFC3339), firstCert.SerialNumber, caOnly)

	// clientNamespaces: myuser (no namespace of its own) has a certificate in
	// each, with a key of its own; asp (namespace set) is in its namespace only.
	myuserSecret := r.userSecretName(testUser)
	mine := map[string]*x509.Certificate{}
	keys := map[string]string{}
	for _, ns := range []string{storeNs, clientNs} {
		s, err := k8s.GetSecretContextE(t, ctx, c.KubectlOptions(ns), myuserSecret)
		require.NoError(t, err, "clientNamespaces: no Secret %s in %s", myuserSecret, ns)
		mine[ns] = parseCertPEM(t, s.Data["tls.crt"])
		keys[ns] = string(s.Data["tls.key"])
		require.Equal(t, testUser, mine[ns].Subject.CommonName)
		verifyClientCert(t, mine[ns], rootCA)
	}
	require.NotEqual(t, keys[storeNs], keys[clientNs], "each namespace's copy has a key of its own")
	_, err = k8s.GetSecretContextE(t, ctx, r.kubectl, userSecret)
	require.Error(t, err, "%s must not be in the release namespace %s: its own namespace overrides clientNamespaces", userSecret, storeNs)
	t.Logf("clientNamespaces: %s in %s (serial %s) and %s (serial %s); %s only in %s", myuserSecret,
		storeNs, mine[storeNs].SerialNumber, clientNs, mine[clientNs].SerialNumber, userSecret, clientNs)

	// The client: a labelled pod in its namespace, watching asp/ through the
	// client Service's cross-namespace name, with only those two Secrets.
	// The same release seen from the client namespace, for the probe pods
	// (kubectl only: no tunnel or API access there, so misuse fails loudly).
	cr := *r
	cr.kubectl = clientKubectl
	cr.kube = nil
	image := busyboxImage(t, c.RepoRoot)
	pod0, _ := r.podClient(t, 0)
	from := revision(t, pod0)
	spec := fmt.Sprintf(clientNamespacePodSpec, "asp-client", r.clientLabel(), r.storeImage(t), "asp/", r.serviceURL(),
		userSecret, caOnly, from, image)
	client := applyClientPod(t, clientKubectl, "asp-client", spec)
	client.mustRun(t, "put", "asp/before-renewal", "v1")
	require.Equal(t, "v1", strings.TrimSpace(client.mustRun(t, "get", "asp/before-renewal")))
	client.waitEvent(t, "asp/before-renewal", "v1")
	t.Logf("the client in %s wrote and read asp/before-renewal with only %s and %s", clientNs, userSecret, caOnly)

	// The NetworkPolicy: the labelled pod of the client namespace reaches the
	// client port, an unlabelled pod beside it is dropped.
	labelled := cr.startProbePod(t, "probe-labelled", image, true)
	unlabelled := cr.startProbePod(t, "probe-unlabelled", image, false)
	storePod := r.storePods(t)[r.pod(0)]
	require.NotEmpty(t, storePod.Status.PodIP)
	at := fmt.Sprintf("%s (%s)", r.pod(0), storePod.Status.PodIP)
	cr.expectProbe(t, labelled, storePod.Status.PodIP, clientPort, connected, "labelled pod in "+clientNs+" -> client port of "+at)
	cr.expectProbe(t, unlabelled, storePod.Status.PodIP, clientPort, dropped, "unlabelled pod in "+clientNs+" -> client port of "+at)

	// Renewal: with renewBeforeDays above the validity every generated
	// certificate expires "within" it, so helm upgrade re-issues them all,
	// signed by the same CA (the chart's generate mode; integer values, not
	// --set-string, for the schema).
	r.helm.SetValues["tls.renewBeforeDays"] = "900"
	r.upgrade(t, nil)
	renewed, err := k8s.GetSecretContextE(t, ctx, clientKubectl, userSecret)
	require.NoError(t, err)
	renewedCert := parseCertPEM(t, renewed.Data["tls.crt"])
	require.NotEqual(t, firstCert.SerialNumber, renewedCert.SerialNumber, "helm upgrade did not renew %s in %s", userSecret, clientNs)
	require.NotEqual(t, string(first.Data["tls.key"]), string(renewed.Data["tls.key"]), "a renewed certificate has a new key")
	verifyClientCert(t, renewedCert, rootCA)
	for _, ns := range []string{storeNs, clientNs} {
		s, err := k8s.GetSecretContextE(t, ctx, c.KubectlOptions(ns), myuserSecret)
		require.NoError(t, err)
		cert := parseCertPEM(t, s.Data["tls.crt"])
		require.NotEqual(t, mine[ns].SerialNumber, cert.SerialNumber, "helm upgrade did not renew %s in %s", myuserSecret, ns)
		verifyClientCert(t, cert, rootCA)
	}
	t.Logf("helm upgrade renewed %s in %s: serial %s -> %s, NotAfter %s -> %s", userSecret, clientNs,
		firstCert.SerialNumber, renewedCert.SerialNumber, firstCert.NotAfter.Format(time.RFC3339), renewedCert.NotAfter.Format(time.RFC3339))

	// No restart: the kubelet swaps the mounted Secret's files in place (a
	// volume, never subPath), and each command of the client reads them anew,
	// as a client that loads its certificate per connection or watches its
	// files does. Wait until the pod's file is the renewed certificate.
	sum := sha256.Sum256(renewed.Data["tls.crt"])
	want := hex.EncodeToString(sum[:])
	_, err = retry.DoWithRetryContextE(t, ctx, "the client pod's mounted tls.crt is the renewed one", pollTries, pollEvery, func() (string, error) {
		out, err := k8s.ExecPodContextE(t, ctx, clientKubectl, "asp-client", "files", "sha256sum", "/etc/ephemeral-store/user/tls.crt")
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(strings.TrimSpace(out), want) {
			return "", fmt.Errorf("mounted tls.crt is %q, want %s", strings.TrimSpace(out), want)
		}
		return want, nil
	})
	require.NoError(t, err)
	before := clientRestarts(t, clientKubectl, "asp-client")
	client.mustRun(t, "put", "asp/after-renewal", "v2")
	require.Equal(t, "v2", strings.TrimSpace(client.mustRun(t, "get", "asp/after-renewal")))
	require.Equal(t, "v1", strings.TrimSpace(client.mustRun(t, "get", "asp/before-renewal")))
	client.waitEvent(t, "asp/after-renewal", "v2")
	require.Equal(t, before, clientRestarts(t, clientKubectl, "asp-client"), "the client pod restarted")
	t.Logf("after the renewal the client wrote and read with the renewed certificate (no restart), and its watch stream opened before saw the write")

	// The twin of the drop: without the policy the unlabelled pod connects,
	// so the drop above was the NetworkPolicy's.
	require.NoError(t, k8s.RunKubectlContextE(t, ctx, r.kubectl, "delete", "networkpolicy", r.fullname))
	cr.expectProbe(t, unlabelled, storePod.Status.PodIP, clientPort, connected, "unlabelled pod in "+clientNs+" -> client port of "+at+", no policy")
}

// clientNamespacePodSpec is a client of the store in its own namespace that
// mounts only what the chart made there: the user's certificate (tls.crt and
// tls.key; not the Secret's ca.crt) and the CA-only Secret's rootCA.crt. The
// store image has no shell, so a busybox container beside it shows the
// mounted files.
const clientNamespacePodSpec = `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  labels:
    app.kubernetes.io/name: e2e-asp
    %[2]s: "true"
spec:
  restartPolicy: Always
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  terminationGracePeriodSeconds: 2
  dnsConfig:
    options: [{name: ndots, value: "2"}]
  containers:
    - name: client
      image: %[3]s
      imagePullPolicy: IfNotPresent
      args: [watch, %[4]q, -w, json, --from, "%[8]d"]
      env:
        - {name: ES_ENDPOINTS, value: %[5]q}
        - {name: ES_CERT, value: /etc/ephemeral-store/user/tls.crt}
        - {name: ES_KEY, value: /etc/ephemeral-store/user/tls.key}
        - {name: ES_CACERT, value: /etc/ephemeral-store/ca/rootCA.crt}
      resources:
        requests: {cpu: 10m, memory: 16Mi}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: user, mountPath: /etc/ephemeral-store/user, readOnly: true}
        - {name: ca, mountPath: /etc/ephemeral-store/ca, readOnly: true}
    - name: files
      image: %[9]s
      imagePullPolicy: IfNotPresent
      command: [sleep, "3600"]
      resources:
        requests: {cpu: 5m, memory: 8Mi}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: user, mountPath: /etc/ephemeral-store/user, readOnly: true}
  volumes:
    - name: user
      secret:
        secretName: %[6]s
        defaultMode: 288
        items:
          - {key: tls.crt, path: tls.crt}
          - {key: tls.key, path: tls.key}
    - name: ca
      secret:
        secretName: %[7]s
        defaultMode: 288
`

// verifyClientCert checks that cert is a client certificate signed by ca.
func verifyClientCert(t *testing.T, cert, ca *x509.Certificate) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err, "the certificate of %s does not chain to the CA-only Secret's CA", cert.Subject.CommonName)
}

// clientRestarts is the restart count of every container of a pod.
func clientRestarts(t *testing.T, kubectl *k8s.KubectlOptions, name string) string {
	t.Helper()
	p, err := k8s.GetPodContextE(t, t.Context(), kubectl, name)
	require.NoError(t, err)
	return podIdentity(*p)
}
