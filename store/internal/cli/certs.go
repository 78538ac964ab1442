package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ephemeral-store/ephemeral-store/store/certnames"
	"github.com/ephemeral-store/ephemeral-store/store/internal/pki"
)

// chartName is the Helm chart's name; object names derive from it.
const chartName = "ephemeral-store"

// chartFullname is the chart's "ephemeral-store.fullname" without
// overrides: the release name when it contains the chart name, else
// <release>-ephemeral-store.
func chartFullname(release string) string {
	if strings.Contains(release, chartName) {
		return release
	}
	return release + "-" + chartName
}

func newCertsCommand() *cobra.Command {
	var (
		out       string
		caCert    string
		caKey     string
		dns       []string
		users     []string
		release   string
		namespace string
		domain    string
		replicas  int
		force     bool
	)
	cmd := &cobra.Command{
		Use:   "certs --out DIR",
		Short: "Create a root CA, server, peer and user certificates",
		Long: `Create the certificates a store needs, in DIR: rootCA.crt and rootCA.key (or
sign with an existing CA given by --ca-cert and --ca-key), server.crt and
server.key, peer.crt and peer.key, and <user>.crt and <user>.key for every
--user (its Common Name is the user name of the users ConfigMap).

The server certificate names localhost, 127.0.0.1, every --dns name and,
unless --k8s-release is "", the Services and pods of the Helm release in
--namespace: the client Service, the headless <fullname>-info Service and
--replicas pods, and *.<fullname>-info for pods a later scale-up adds, each
also under .<namespace>, .<namespace>.svc and .<namespace>.svc.<--cluster-domain>,
as the chart's own certificates do (store/certnames makes both lists).
Existing files are kept unless --force.`,
		Example: `  ephemeral-store certs --out ./certs
  ephemeral-store certs --out ./certs --user proxy --user controller --namespace store --dns store.example.com
  kubectl create secret generic ephemeral-store-secret --from-file=./certs/rootCA.crt --from-file=./certs/rootCA.key`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErrorf("--out DIR is required: the directory to write the certificates to")
			}
			if (caCert == "") != (caKey == "") {
				return usageErrorf("--ca-cert and --ca-key go together (got cert %q, key %q)", caCert, caKey)
			}
			if replicas < 1 {
				return usageErrorf("--replicas %d: want at least 1", replicas)
			}
			names := append([]string(nil), dns...)
			if release != "" {
				full := chartFullname(release)
				rel := certnames.Release{StatefulSet: full, Headless: full + "-info", Namespace: namespace, ClusterDomain: domain}
				names = append(names, rel.ServerDNSNames(replicas)...)
			}
			files, err := pki.WriteBundle(out, pki.BundleOptions{
				CACertFile: caCert,
				CAKeyFile:  caKey,
				DNSNames:   names,
				Users:      users,
				Force:      force,
			})
			if err != nil {
				return fmt.Errorf("certs: %w", err)
			}
			w := cmd.OutOrStdout()
			for _, f := range files {
				if _, err := fmt.Fprintln(w, f); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to write the certificates to (created if missing)")
	f.StringVar(&caCert, "ca-cert", "", "sign with this existing CA certificate instead of creating rootCA.crt")
	f.StringVar(&caKey, "ca-key", "", "key of --ca-cert")
	f.StringSliceVar(&dns, "dns", nil, "extra DNS name for the server certificate (repeatable or comma-separated)")
	f.StringSliceVar(&users, "user", []string{"myuser"}, "user to create a client certificate for (repeatable or comma-separated)")
	f.StringVar(&release, "k8s-release", chartName, `Helm release whose Service and pod names the server certificate carries ("" for none)`)
	f.StringVar(&namespace, "namespace", "default", "Kubernetes namespace of the release")
	f.StringVar(&domain, "cluster-domain", certnames.DefaultClusterDomain, "Kubernetes cluster DNS domain (the chart's clusterDomain)")
	f.IntVar(&replicas, "replicas", 5, "number of store pods of the release")
	f.BoolVar(&force, "force", false, "overwrite existing files")
	noEnv(cmd, "force")
	return cmd
}
