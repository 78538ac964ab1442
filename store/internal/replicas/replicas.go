// Package replicas tells a node how many replicas the platform runs now:
// the StatefulSet's spec.replicas read from the Kubernetes API, a number in
// a file, or a fixed number (the --replicas flag). The cluster package
// turns what a source reports into a replicated fact (a Raft log entry), so
// every member agrees on one count whatever its own source says at the
// moment.
//
// The count must follow the platform without a restart: a flag in the pod
// template changes only when a rolling update restarts every pod, and that
// update runs while the old count still holds (issue 18: a scale-down from
// 5 to 3 left the survivors counting 5 voters, and the rolling update that
// followed lost every key).
package replicas

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Source reports the replica count the platform runs now. A fresh call
// reads the source again (no cache): the cluster reads it when it must
// decide (a leaver on SIGTERM, a leader before it proposes a new count).
type Source interface {
	Replicas(ctx context.Context) (int, error)
	// String names the source in logs.
	String() string
}

// Fixed is a count that never changes (the --replicas flag).
type Fixed int

// Replicas returns the fixed count.
func (f Fixed) Replicas(context.Context) (int, error) { return int(f), nil }

func (f Fixed) String() string { return fmt.Sprintf("--replicas=%d", int(f)) }

// File reads a decimal count from a file (processes outside Kubernetes and
// the tests: an operator or a test harness writes the new count there).
type File string

// Replicas reads the file.
func (f File) Replicas(context.Context) (int, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return 0, fmt.Errorf("replica count file: %w", err)
	}
	return parseCount(strings.TrimSpace(string(b)), "file "+string(f))
}

func (f File) String() string { return "file:" + string(f) }

func parseCount(s, where string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("replica count in %s: %q is not a number of at least 1", where, s)
	}
	return n, nil
}

// Parse turns --replicas-from into a Source: "" (the fixed flag value),
// "file:PATH" or "statefulset" (the pod's own StatefulSet, found from the
// pod name, in the namespace of the pod's service account).
func Parse(spec string, flag int, podName string) (Source, error) {
	switch {
	case spec == "":
		return Fixed(flag), nil
	case strings.HasPrefix(spec, "file:") && len(spec) > len("file:"):
		return File(strings.TrimPrefix(spec, "file:")), nil
	case spec == "statefulset":
		return InCluster(podName)
	}
	return nil, fmt.Errorf("--replicas-from %q: want statefulset or file:PATH", spec)
}

// StatefulSet reads spec.replicas of one StatefulSet through the
// Kubernetes API, with the pod's service account token. The spec changes
// before the StatefulSet controller deletes a pod, so a leaving pod that
// reads it on SIGTERM knows whether it leaves for good; a ConfigMap volume
// would be up to a minute late. One plain GET is all it needs, so the
// server does not link client-go (it would double the static binary).
type StatefulSet struct {
	// URL of the StatefulSet object.
	URL string
	// TokenFile is re-read for every request: projected tokens rotate.
	TokenFile string
	Client    *http.Client
}

// Where the kubelet mounts a pod's service account.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InCluster locates the pod's own StatefulSet: its name is the pod name
// without the trailing -<ordinal>; its namespace is POD_NAMESPACE when
// set, else the service account's namespace file; the API server is
// KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT, trusted through the
// service account's CA.
func InCluster(podName string) (*StatefulSet, error) {
	i := strings.LastIndex(podName, "-")
	if i <= 0 {
		return nil, fmt.Errorf("--replicas-from statefulset: pod name %q has no -<ordinal> suffix", podName)
	}
	name := podName[:i]
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		b, err := os.ReadFile(serviceAccountDir + "/namespace")
		if err != nil {
			return nil, fmt.Errorf("--replicas-from statefulset: namespace (set POD_NAMESPACE or mount the service account token): %w", err)
		}
		ns = strings.TrimSpace(string(b))
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("--replicas-from statefulset: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod?)")
	}
	ca, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return nil, fmt.Errorf("--replicas-from statefulset: the service account's CA (is automountServiceAccountToken on?): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("--replicas-from statefulset: no certificate in the service account's ca.crt")
	}
	return &StatefulSet{
		URL:       fmt.Sprintf("https://%s/apis/apps/v1/namespaces/%s/statefulsets/%s", net.JoinHostPort(host, port), ns, name),
		TokenFile: serviceAccountDir + "/token",
		Client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
	}, nil
}

// Replicas GETs the StatefulSet (a quorum read in the API server: the
// newest spec) and returns spec.replicas.
func (s *StatefulSet) Replicas(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return 0, err
	}
	if s.TokenFile != "" {
		tok, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return 0, fmt.Errorf("service account token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get statefulset: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("get statefulset: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("get statefulset %s: %s: %s", s.URL, resp.Status, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	var sts struct {
		Spec struct {
			Replicas *int `json:"replicas"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &sts); err != nil {
		return 0, fmt.Errorf("decode statefulset: %w", err)
	}
	if sts.Spec.Replicas == nil {
		return 1, nil // the API's default
	}
	return parseCount(strconv.Itoa(*sts.Spec.Replicas), "statefulset spec.replicas")
}

func (s *StatefulSet) String() string { return "statefulset " + s.URL }
