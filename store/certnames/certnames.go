// Package certnames says which DNS names the certificates of a store
// release in Kubernetes carry: the names clients and peers dial, as the
// Helm chart creates the Services and the StatefulSet. It is the one
// source of those names for Go: `ephemeral-store certs`, the server's
// minted certificate (--tls-ca-key) and the chart tests, which check that
// the chart's certificates (generated Secrets, cert-manager Certificates,
// the --san flags of mint mode) carry exactly these.
//
// It is public as part of the contract between the chart, the CLI and the
// server (docs/interfaces.md): change a name only together with the
// chart's templates.
//
// Every name comes in the forms a pod's resolver accepts: the short name
// (same namespace), .<namespace>, .<namespace>.svc and the fully qualified
// .<namespace>.svc.<cluster domain>.
package certnames

import (
	"strconv"
	"strings"
)

// DefaultClusterDomain is Kubernetes' default cluster DNS domain.
const DefaultClusterDomain = "cluster.local"

// Release names the objects of one release of the chart.
type Release struct {
	// StatefulSet is the StatefulSet's name: the chart's fullname, which
	// also names the client Service and prefixes every pod
	// (<StatefulSet>-<ordinal>).
	StatefulSet string
	// Headless is the headless Service's name (<fullname>-info), the
	// domain of the pods' own names.
	Headless string
	// Namespace is the release's namespace; "" gives short names only.
	Namespace string
	// ClusterDomain is the cluster's DNS domain, normally
	// DefaultClusterDomain; "" leaves the fully qualified form out.
	ClusterDomain string
}

// forms returns name in each form a pod's resolver accepts.
func (r Release) forms(name string) []string {
	if r.Namespace == "" {
		return []string{name}
	}
	out := []string{name, name + "." + r.Namespace, name + "." + r.Namespace + ".svc"}
	if r.ClusterDomain != "" {
		out = append(out, name+"."+r.Namespace+".svc."+r.ClusterDomain)
	}
	return out
}

// PodName is the name of the pod of that ordinal.
func (r Release) PodName(ordinal int) string {
	return r.StatefulSet + "-" + strconv.Itoa(ordinal)
}

// ServiceDNSNames are the names every certificate of the release's pods
// carries, whichever pod serves: the client Service and the headless
// Service in every form, and localhost (kubectl port-forward). In mint
// mode the chart passes them to each pod as --san.
func (r Release) ServiceDNSNames() []string {
	var names []string
	if r.StatefulSet != "" {
		names = append(names, r.forms(r.StatefulSet)...)
	}
	if r.Headless != "" {
		names = append(names, r.forms(r.Headless)...)
	}
	return dedupe(append(names, "localhost"))
}

// PodDNSNames are the names of one pod: <pod>.<headless> in every form,
// the address peers dial it by (--advertise).
func (r Release) PodDNSNames(ordinal int) []string {
	if r.StatefulSet == "" || r.Headless == "" {
		return nil
	}
	return r.forms(r.PodName(ordinal) + "." + r.Headless)
}

// ServerDNSNames are the names of the one server certificate all pods of
// the release share (the chart's generate and certManager modes,
// `ephemeral-store certs`): ServiceDNSNames, PodDNSNames of every ordinal
// below replicas, and the wildcard *.<headless> in every form, which
// covers pods added by a later scale-up.
func (r Release) ServerDNSNames(replicas int) []string {
	names := r.ServiceDNSNames()
	for i := range replicas {
		names = append(names, r.PodDNSNames(i)...)
	}
	if r.Headless != "" {
		names = append(names, r.forms("*."+r.Headless)...)
	}
	return dedupe(names)
}

// FromHeadlessDomain reads the Release fields that the headless Service's
// domain holds, as --peers-dns gives it: <headless>.<namespace>.svc[.<cluster
// domain>]. Another form (not a Kubernetes Service name) is taken as the
// headless name as it is, without namespace. StatefulSet is left empty.
func FromHeadlessDomain(domain string) Release {
	parts := strings.SplitN(domain, ".", 4)
	if len(parts) < 3 || parts[2] != "svc" || parts[0] == "" || parts[1] == "" {
		return Release{Headless: domain}
	}
	r := Release{Headless: parts[0], Namespace: parts[1]}
	if len(parts) == 4 {
		r.ClusterDomain = parts[3]
	}
	return r
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
