//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/gruntwork-io/terratest/modules/retry"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/tests/internal/testca"
)

// TestE2ECARotationStrandsNoPod: caSecret mode (each pod mints its
// certificate from the root CA Secret), the CA Secret replaced by a new CA
// the way an operator does it in one step, under load:
//
//  1. the Secret's rootCA.crt and rootCA.key become the new CA's;
//  2. pod 0 is restarted at once, so it mounts the new CA while the other
//     pods still see the old files (kubelet updates a mounted Secret up to
//     a minute or so later);
//  3. the other pods' files change: they re-mint from the new CA (before the
//     fix they kept serving the old CA's certificate while trusting only
//     the new one, so pod 0 was never Ready: x509: certificate signed by
//     unknown authority), and pod 0 becomes Ready;
//  4. a pod that saw the rotation still accepts a client holding only the
//     old CA's certificate (the grace period);
//  5. `kubectl rollout restart` rolls every pod.
//
// Four clients write and read throughout, retrying what fails. They trust
// both CAs and hold the user's certificate of each (the CAs have different
// names, so Go presents the one a pod asks for): every pod becomes Ready,
// no request fails after its retries, the history is linearizable and
// every acknowledged write is read back.
func TestE2ECARotationStrandsNoPod(t *testing.T) {
	c := suite(t, "CA rotation in caSecret mode: a pod restarted before and pods restarted after all become Ready, no request fails")
	run := strings.ToLower(random.UniqueID())
	oldCA, newCA := testca.New(t, "e2e-rotation-ca-1-"+run), testca.NewECDSA(t, "e2e-rotation-ca-2-"+run)
	caSecret := defaultRelease + "-secret"
	var kube *kubeAccess
	r := install(t, c, installOptions{Label: "carotation", Set: map[string]string{"tls.mode": "caSecret", "tls.ca.create": "false"},
		BeforeInstall: func(r *release) {
			kube = r.kube
			_, err := kube.clientset.CoreV1().Secrets(r.ns).Create(t.Context(), &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: caSecret},
				Data:       caSecretData(oldCA),
			}, metav1.CreateOptions{})
			require.NoError(t, err, "create the root CA Secret %s", caSecret)
			t.Logf("root CA Secret %s: %s", caSecret, oldCA)
		}})

	// The clients: the chart's certificate of the user (old CA) and one of
	// the new CA, both CAs trusted: what an operator hands a client before
	// rotating.
	chartUser := r.userSecret(t, testUser)
	oldCert, err := tls.X509KeyPair(chartUser.Data["tls.crt"], chartUser.Data["tls.key"])
	require.NoError(t, err)
	newCert, err := tls.X509KeyPair(newCA.ValidClientCert(t, testUser))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(oldCA.Cert)
	roots.AddCert(newCA.Cert)
	both := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: r.serviceDNS(),
		Certificates: []tls.Certificate{newCert, oldCert}, NextProtos: []string{"h2", "http/1.1"}}
	onlyOld := both.Clone()
	onlyOld.Certificates = []tls.Certificate{oldCert}
	r.tls = both

	tunnels := &podTunnels{kube: kube, r: r, tls: both}
	admin := tunnels.client(t, r.fullname)
	r.members(t, admin)
	load := newUpgradeLoad(run)
	clients := newLoadClients(t, r, tunnels, r.replicas)
	stopLoad := load.start(t, clients)
	load.waitOps(t, opsBeforeAndAfter, "before the rotation")
	for i := range r.replicas {
		require.Equal(t, oldCA.Cert.Subject.CommonName, servedIssuer(t, tunnels, r.pod(i)), "%s before the rotation", r.pod(i))
	}
	rotateFrom := load.h.Now()

	// 1 and 2: the new CA in the Secret, pod 0 restarted at once.
	s, err := kube.clientset.CoreV1().Secrets(r.ns).Get(t.Context(), caSecret, metav1.GetOptions{})
	require.NoError(t, err)
	s.Data = caSecretData(newCA)
	_, err = kube.clientset.CoreV1().Secrets(r.ns).Update(t.Context(), s, metav1.UpdateOptions{})
	require.NoError(t, err, "replace the root CA in Secret %s", caSecret)
	rotated := time.Now()
	t.Logf("root CA Secret %s now holds %s only", caSecret, newCA)
	before := r.storePods(t)
	require.NoError(t, k8s.RunKubectlContextE(t, t.Context(), r.kubectl, "delete", "pod", r.pod(0), "--wait=false"))
	t.Logf("pod %s deleted right after the rotation (the StatefulSet recreates it with the new Secret)", r.pod(0))
	_, err = retry.DoWithRetryContextE(t, t.Context(), r.pod(0)+" recreated", pollTries, pollEvery, func() (string, error) {
		p, ok := r.storePods(t)[r.pod(0)]
		if !ok || p.UID == before[r.pod(0)].UID || !containerRunning(&p) {
			return "", fmt.Errorf("%s not yet recreated and running", r.pod(0))
		}
		return "", nil
	})
	require.NoError(t, err)
	issuers := map[string]string{}
	for i := range r.replicas {
		issuers[r.pod(i)] = servedIssuer(t, tunnels, r.pod(i))
	}
	t.Logf("%s after the rotation, the served certificates' issuers: %v (the old CA on a pod means kubelet has not updated its files yet)",
		time.Since(rotated).Round(time.Second), issuers)

	// 3: pod 0 becomes Ready, every pod ends up on the new CA.
	require.NoError(t, k8s.WaitUntilPodAvailableContextE(t, t.Context(), r.kubectl, r.pod(0), pollTries, pollEvery),
		"%s, restarted with the new CA before the others saw it, never became Ready", r.pod(0))
	for i := range r.replicas {
		_, err := retry.DoWithRetryContextE(t, t.Context(), r.pod(i)+" serves a certificate of the new CA", pollTries, pollEvery, func() (string, error) {
			if got := servedIssuer(t, tunnels, r.pod(i)); got != newCA.Cert.Subject.CommonName {
				return "", fmt.Errorf("%s serves a certificate of %q", r.pod(i), got)
			}
			return "", nil
		})
		require.NoError(t, err)
	}
	t.Logf("%s after the rotation every pod serves a certificate of %s", time.Since(rotated).Round(time.Second), newCA)
	r.members(t, admin)
	t.Logf("%s after the rotation %s (restarted before the others' files changed) is Ready and a voter", time.Since(rotated).Round(time.Second), r.pod(0))

	// 4: the grace period, on a pod that saw the rotation.
	old, closeOld := r.tunnel(t, k8s.ResourceTypePod, r.pod(1), onlyOld)
	_, err = old.Get(t.Context(), load.keys[0])
	if !errors.Is(err, client.ErrKeyNotFound) {
		require.NoError(t, err, "a client with only the old CA's certificate through %s (running since before the rotation: grace period)", r.pod(1))
	}
	closeOld()
	t.Logf("a client holding only the old CA's certificate is still served by %s (it saw the rotation)", r.pod(1))

	// 5: roll every pod.
	rolling := r.identities(t)
	require.NoError(t, k8s.RunKubectlContextE(t, t.Context(), r.kubectl, "rollout", "restart", "statefulset/"+r.fullname))
	r.waitRolled(t, rolling)
	r.members(t, admin)
	for i := range r.replicas {
		require.Equal(t, newCA.Cert.Subject.CommonName, servedIssuer(t, tunnels, r.pod(i)), "%s after the roll", r.pod(i))
	}
	rotateTo := load.h.Now()
	t.Logf("%s after the rotation every pod was rolled, is Ready and serves a certificate of %s", time.Since(rotated).Round(time.Second), newCA)
	load.waitOps(t, opsBeforeAndAfter, "after the roll")
	stopLoad()

	final := load.finalReads(t, r, tunnels)
	load.reportWithGap(t, rotateFrom, rotateTo, "from the rotation to the end of the roll")
	load.verdicts(t, final, "e2e-carotation-linearizability-*.html")
}

// caSecretData is a root CA Secret's data as the chart reads it by default.
func caSecretData(ca *testca.CA) map[string][]byte {
	return map[string][]byte{"rootCA.crt": ca.CertPEM, "rootCA.key": ca.KeyPEM}
}

// servedIssuer is the Common Name of the issuer of the certificate pod
// serves on its client port ("" when it does not answer), read through a
// port-forward of its own.
func servedIssuer(t *testing.T, tunnels *podTunnels, pod string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	raw, err := tunnels.kube.portForward(ctx, pod, clientPort)
	if err != nil {
		t.Logf("served issuer of %s: %v", pod, err)
		return ""
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // #nosec G402 -- only the presented certificate is read
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Logf("served issuer of %s: %v", pod, err)
		return ""
	}
	return conn.ConnectionState().PeerCertificates[0].Issuer.CommonName
}
