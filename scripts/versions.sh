# shellcheck shell=bash
# The one place for versions. Every script and the Makefile read these; a change
# here invalidates the stamps of the stages that depend on it.
export KIND_VERSION=v0.33.0
export K8S_VERSION=v1.34.3          # kubelet etc.; the k8s.io/* Go modules of go.mod are v0.36.2 (docs/interfaces.md says why)
export HELM_VERSION=v3.22.0
export CT_VERSION=v3.14.0           # chart-testing (github.com/helm/chart-testing/v3)
export CONTAINERD_VERSION=v2.3.4    # what kind v0.33.0's base image ships
export CRICTL_VERSION=v1.36.0
export ETCD_VERSION=v3.6.5          # kubeadm 1.34 -> registry.k8s.io/etcd:3.6.5-0
export COREDNS_VERSION=v1.12.1      # kubeadm 1.34 -> registry.k8s.io/coredns/coredns:v1.12.1
export LPP_VERSION=v0.0.30          # local-path-provisioner: the only version the proxy serves
export DEBIAN_SUITE=trixie
export BUSYBOX_VERSION=1.35         # Debian bookworm's busybox-static: local-path helper image
export KNP_VERSION=v0.8.0           # sigs.k8s.io/kube-network-policies: the NetworkPolicy agent kind's kindnetd embeds
export SHELLCHECK_VERSION=0.9.0-1     # Debian bookworm's shellcheck package: scripts/verify.sh
export GOLANGCI_LINT_VERSION=v2.15.0  # github.com/golangci/golangci-lint/v2: scripts/verify.sh, .golangci.yml
export GOVULNCHECK_VERSION=v1.9.0     # golang.org/x/vuln: scripts/verify.sh
# golang.org/x/vulndb: its OSV files become the offline database govulncheck reads
# (scripts/install-linters.sh); the pseudo-version's date is the data's date. Bump it for newer data.
export VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

# The kind node image built offline by scripts/node-image.sh (a `localhost/` name: kind's
# builder always tries `docker pull <base>`, which then fails at once on 127.0.0.1 instead of
# asking a registry). Bump KIND_NODE_REV when the recipe in scripts/kind-node/ changes in a
# way its inputs' versions do not show; the image is then rebuilt.
export KIND_NODE_REV=2
export KIND_NODE_IMAGE=localhost/ephemeral-store/kind-node:${K8S_VERSION}
