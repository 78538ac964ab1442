{{/*
Validation of values that values.schema.json cannot express (odd replica
counts, cross-field rules). Each message names the key and a fix. All problems
are reported at once.
*/}}
{{- define "ephemeral-store.validateValues" -}}
{{- $errors := list }}
{{- $v := .Values }}

{{- /* Quorum: an odd count of at least 3. */}}
{{- $r := int $v.replicaCount }}
{{- if lt $r 3 }}
{{- $errors = append $errors (printf "replicaCount: %d is too small: a Raft cluster needs at least 3 pods to survive the loss of one. Fix: set replicaCount to 3, 5 or 7." $r) }}
{{- else if eq (mod $r 2) 0 }}
{{- $errors = append $errors (printf "replicaCount: %d is even: a majority of %d pods is %d, so it survives no more failures than %d pods do, and a split into two halves leaves no majority. Fix: set an odd replicaCount, %d or %d." $r $r (add (div $r 2) 1) (sub $r 1) (sub $r 1) (add $r 1)) }}
{{- end }}

{{- /* The PodDisruptionBudget must keep a majority (replicas - (replicas/2 + 1) down at most). */}}
{{- if and $v.pdb.create (ge $r 3) }}
{{- $margin := int (include "ephemeral-store.quorumMargin" .) }}
{{- $mu := int $v.pdb.maxUnavailable }}
{{- if gt $mu $margin }}
{{- $errors = append $errors (printf "pdb.maxUnavailable: %d of %d pods down at once leaves no majority of %d, and a majority loss empties the store. Fix: set pdb.maxUnavailable to 1 (the default, which leaves a margin for one more fault), at most %d." $mu $r (add (div $r 2) 1) $margin) }}
{{- end }}
{{- end }}

{{- /* Names: pod names get "-<ordinal>" and the controller-revision-hash label. */}}
{{- $fullname := include "ephemeral-store.fullname" . }}
{{- if gt (len $fullname) 52 }}
{{- $errors = append $errors (printf "fullnameOverride: the base name %q has %d characters; a StatefulSet name longer than 52 breaks the pods' controller-revision-hash label. Fix: set fullnameOverride (or a shorter release name) of at most 52 characters." $fullname (len $fullname)) }}
{{- end }}

{{- /* Pod labels must not touch the selector. */}}
{{- range $k := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" }}
{{- if hasKey $v.podLabels $k }}
{{- $errors = append $errors (printf "podLabels: %q is part of the immutable selector of the StatefulSet and Services. Fix: remove it from podLabels (use nameOverride to change the name)." $k) }}
{{- end }}
{{- end }}

{{- /* Users. */}}
{{- $seen := dict }}
{{- $mode := $v.tls.mode }}
{{- range $i, $u := $v.users }}
{{- $name := toString (default "" $u.name) }}
{{- if not (regexMatch "^[A-Za-z0-9_][-._A-Za-z0-9]*$" $name) }}
{{- $errors = append $errors (printf "users[%d].name: %q is not a valid user name: it becomes the ConfigMap key \"<name>.json\" and the certificate CN, and the store skips files starting with \".\". Fix: use letters, digits, \"-\", \"_\" and \".\", not starting with \".\"." $i $name) }}
{{- end }}
{{- if hasKey $seen $name }}
{{- $errors = append $errors (printf "users[%d].name: %q is listed twice (also users[%v]). Fix: keep one entry per user and merge their permissions." $i $name (get $seen $name)) }}
{{- end }}
{{- $_ := set $seen $name $i }}
{{- if $u.createSecret }}
{{- if eq $mode "existing" }}
{{- $errors = append $errors (printf "users[%d].createSecret: tls.mode=existing gives the chart no CA key to sign %q's certificate with. Fix: set users[%d].createSecret=false and create the Secret yourself (ephemeral-store certs --ca-cert rootCA.crt --ca-key rootCA.key --user %s), or use tls.mode generate, caSecret or certManager." $i $name $i $name) }}
{{- end }}
{{- if $v.tls.clientCA.existingSecret }}
{{- $errors = append $errors (printf "users[%d].createSecret: the chart signs user certificates with the server CA, but tls.clientCA.existingSecret=%q makes the store trust only that CA for users. Fix: unset tls.clientCA.existingSecret, or set users[%d].createSecret=false and sign %q's certificate with your user CA." $i $v.tls.clientCA.existingSecret $i $name) }}
{{- end }}
{{- $away := without (include "ephemeral-store.namespacesOfUser" (dict "root" $ "user" $u) | fromJsonArray) $.Release.Namespace }}
{{- if and (eq $mode "certManager") $away (ne $v.tls.certManager.issuerRef.kind "ClusterIssuer") }}
{{- $quoted := list }}{{ range $away }}{{ $quoted = append $quoted (quote .) }}{{ end }}
{{- $errors = append $errors (printf "%s: %q's Certificate is issued in namespace%s %s (so that cert-manager renews the Secret where the client mounts it), but %s. A namespaced Issuer signs only in its own namespace, and an Issuer there would need the CA key in %s, where whoever reads it can mint any user. Fix: set tls.certManager.issuerRef.name to a ClusterIssuer and tls.certManager.issuerRef.kind=ClusterIssuer (e.g. a CA ClusterIssuer whose CA Secret lives in cert-manager's namespace), or %s." (ternary (printf "users[%d].namespace" $i) "clientNamespaces" (not (empty $u.namespace))) $name (ternary "s" "" (gt (len $away) 1)) (join ", " $quoted) (ternary (printf "tls.certManager.issuerRef is the Issuer %q" $v.tls.certManager.issuerRef.name) "the chart's own CA is a namespaced Issuer" (not (empty $v.tls.certManager.issuerRef.name))) (join ", " $quoted) (ternary (printf "leave users[%d].namespace unset" $i) "leave clientNamespaces empty" (not (empty $u.namespace)))) }}
{{- end }}
{{- $secret := include "ephemeral-store.userSecretName" (dict "root" $ "user" $u) }}
{{- if or (gt (len $secret) 253) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" $secret)) }}
{{- $errors = append $errors (printf "users[%d].secretName: %q is not a valid Secret name (lowercase letters, digits, \"-\" and \".\"). Fix: set users[%d].secretName to a valid name." $i $secret $i) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* Client namespaces. */}}
{{- $clientNamespaces := include "ephemeral-store.clientNamespaces" . | fromJsonArray }}
{{- range $clientNamespaces }}
{{- if or (gt (len .) 63) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .)) }}
{{- $errors = append $errors (printf "users[].namespace, clientNamespaces or clientCA.namespaces: %q is not a namespace name (lowercase letters, digits and \"-\", at most 63). Fix: correct it." .) }}
{{- end }}
{{- end }}
{{- if and (eq $mode "certManager") $v.clientCA.create $clientNamespaces (not $v.clientCA.trustManager.sources) }}
{{- $errors = append $errors (printf "clientCA.create: tls.mode=certManager writes no CA-only Secret, and one rendered by the chart would go stale when the CA changes. Fix: set clientCA.trustManager.sources to where trust-manager finds the CA (e.g. [{secret: {name: <CA Secret>, key: ca.crt}}] in its trust namespace; trust-manager must allow Secret targets) so that a Bundle keeps %s current in %s, or set clientCA.create=false (each user's Secret already carries ca.crt, renewed with the certificate)." (include "ephemeral-store.clientCASecretName" $) (join ", " $clientNamespaces)) }}
{{- end }}

{{- /* TLS. */}}
{{- if eq $mode "existing" }}
{{- if not $v.tls.existing.serverSecret }}
{{- $errors = append $errors "tls.existing.serverSecret: required when tls.mode=existing. Fix: set it to the Secret holding the server certificate (tls.crt, tls.key), or choose tls.mode generate, caSecret or certManager." }}
{{- end }}
{{- if and (not $v.tls.existing.caKey) (not $v.tls.existing.caSecret) }}
{{- $errors = append $errors "tls.existing.caKey: empty and tls.existing.caSecret unset, so nothing gives the CA that signed the server certificate (--tls-ca). Fix: set tls.existing.caKey to the CA key in the server Secret (ca.crt) or tls.existing.caSecret to the root CA Secret." }}
{{- end }}
{{- end }}
{{- if and (eq $mode "certManager") $v.tls.certManager.issuerRef.name (not (has $v.tls.certManager.issuerRef.kind (list "Issuer" "ClusterIssuer"))) }}
{{- $errors = append $errors (printf "tls.certManager.issuerRef.kind: %q is not Issuer or ClusterIssuer. Fix: set it to Issuer or ClusterIssuer." $v.tls.certManager.issuerRef.kind) }}
{{- end }}

{{- /* Metrics. */}}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) }}
{{- $errors = append $errors "metrics.serviceMonitor.enabled: the ServiceMonitor scrapes the metrics Service, which metrics.enabled=false does not create. Fix: set metrics.enabled=true as well." }}
{{- end }}
{{- if and $v.metrics.prometheusRule.enabled (not (and $v.metrics.enabled $v.metrics.serviceMonitor.enabled)) }}
{{- $errors = append $errors (printf "metrics.prometheusRule.enabled: the alert rules select the series the chart's ServiceMonitor scrapes (labels namespace=%q, service=%q); without it they see nothing and EphemeralStoreNoLeader fires for ever. Fix: set metrics.enabled=true and metrics.serviceMonitor.enabled=true as well." $.Release.Namespace (include "ephemeral-store.metricsServiceName" $)) }}
{{- end }}

{{- /* Image: the registry is its own value. */}}
{{- $registry := include "ephemeral-store.imageRegistry" . }}
{{- $repo := toString $v.image.repository }}
{{- $host := first (splitList "/" $repo) }}
{{- if and $registry (contains "/" $repo) (or (contains "." $host) (contains ":" $host) (eq $host "localhost")) }}
{{- $errors = append $errors (printf "image.repository: %q starts with a registry (%q) and the registry %q (image.registry or global.imageRegistry) is put in front of it, giving %q. Fix: set image.registry=%s and image.repository=%s (the registry is a value of its own), or image.registry=\"\" to use the repository as written (global.imageRegistry still wins when set)." $repo $host $registry (include "ephemeral-store.image" .) $host (trimPrefix (printf "%s/" $host) $repo)) }}
{{- end }}

{{- /* Chart 0.1.0 took a repository without a host as Docker Hub's; with the
       registry defaulting to localhost, the same override now names a local image. */}}
{{- if and (eq $registry "localhost") (ne $repo "ephemeral-store") }}
{{- $errors = append $errors (printf "image.repository: %q with image.registry=localhost (the default) gives %q, an image only this machine can have (make image). Since chart 0.2.0 the registry is a value of its own: set image.registry to the registry that holds %s (docker.io, your mirror), or image.registry=\"\" to use the repository as written." $repo (include "ephemeral-store.image" .) $repo) }}
{{- end }}

{{- /* Service: fields that only some Service types have. */}}
{{- if and $v.service.nodePort (not (has $v.service.type (list "NodePort" "LoadBalancer"))) }}
{{- $errors = append $errors (printf "service.nodePort: %v is set but service.type=%s has no node ports. Fix: set service.type=NodePort or LoadBalancer, or service.nodePort=0." $v.service.nodePort $v.service.type) }}
{{- end }}
{{- if and $v.service.loadBalancerSourceRanges (ne $v.service.type "LoadBalancer") }}
{{- $errors = append $errors (printf "service.loadBalancerSourceRanges: only a LoadBalancer Service has them, and service.type=%s. Fix: set service.type=LoadBalancer, or remove service.loadBalancerSourceRanges (use networkPolicy.extraIngress to limit clients by address)." $v.service.type) }}
{{- end }}

{{- /* NetworkPolicy: egress rules only count when egress is restricted. */}}
{{- if and $v.networkPolicy.enabled $v.networkPolicy.extraEgress (not $v.networkPolicy.restrictEgress) }}
{{- $errors = append $errors "networkPolicy.extraEgress: egress is not restricted (networkPolicy.restrictEgress=false), so the NetworkPolicy has no Egress type and these rules would have no effect. Fix: set networkPolicy.restrictEgress=true, or remove networkPolicy.extraEgress." }}
{{- end }}

{{- /* Extra volumes: never a disk the store could persist to, no clash with the chart's volumes. */}}
{{- $volumes := dict "users" true "tls" true "ca" true "client-ca" true }}
{{- range $i, $vol := $v.extraVolumes }}
{{- range $kind := list "persistentVolumeClaim" "hostPath" "ephemeral" }}
{{- if hasKey $vol $kind }}
{{- $errors = append $errors (printf "extraVolumes[%d]: %q is a volume of type %s: the store is never persisted and its pods mount no disk. Fix: remove it; for files the store needs use a secret, configMap, projected or csi volume." $i (toString $vol.name) $kind) }}
{{- end }}
{{- end }}
{{- if hasKey $volumes (toString $vol.name) }}
{{- if has (toString $vol.name) (list "users" "tls" "ca" "client-ca") }}
{{- $errors = append $errors (printf "extraVolumes[%d].name: %q is a volume of the chart (users, tls, ca, client-ca). Fix: choose another name." $i (toString $vol.name)) }}
{{- else }}
{{- $errors = append $errors (printf "extraVolumes[%d].name: %q is listed twice. Fix: give each volume its own name." $i (toString $vol.name)) }}
{{- end }}
{{- end }}
{{- $_ := set $volumes (toString $vol.name) true }}
{{- end }}
{{- range $i, $m := $v.extraVolumeMounts }}
{{- if not (hasKey $volumes (toString $m.name)) }}
{{- $errors = append $errors (printf "extraVolumeMounts[%d].name: %q names no volume. Fix: add it to extraVolumes, or correct the name." $i (toString $m.name)) }}
{{- end }}
{{- end }}

{{- /* helm test: it needs a user certificate that may write its key. */}}
{{- if and $v.tests.enabled (not $v.tests.existingSecret) }}
{{- $testUser := dict }}
{{- range $v.users }}
{{- if eq (toString .name) (toString $v.tests.user) }}
{{- $testUser = . }}
{{- end }}
{{- end }}
{{- $testNs := include "ephemeral-store.namespacesOfUser" (dict "root" $ "user" $testUser) | fromJsonArray }}
{{- if not $testUser }}
{{- $errors = append $errors (printf "tests.user: %q is not in users, so the helm test has no client certificate. Fix: add it to users with createSecret: true, set tests.existingSecret to a Secret with tls.crt, tls.key and ca.crt, or set tests.enabled=false." $v.tests.user) }}
{{- else if not (has $.Release.Namespace $testNs) }}
{{- $errors = append $errors (printf "tests.user: %q's certificate Secret is only in namespace%s %s (%s), and the helm test pod (in %q) can mount a Secret of its own namespace only. Fix: %s, choose a tests.user whose Secret is in %q, or set tests.existingSecret." $v.tests.user (ternary "s" "" (gt (len $testNs) 1)) (join ", " $testNs) (ternary "its users[].namespace" "clientNamespaces" (not (empty $testUser.namespace))) $.Release.Namespace (ternary (printf "set that user's namespace to %q" $.Release.Namespace) (printf "add %q to clientNamespaces (each namespace gets the Secret: clientNamespaces: [%s, %s])" $.Release.Namespace $.Release.Namespace (join ", " $testNs)) (not (empty $testUser.namespace))) $.Release.Namespace) }}
{{- else if not $testUser.createSecret }}
{{- $errors = append $errors (printf "tests.user: %q has no createSecret: true, so the helm test has no client certificate. Fix: set createSecret: true on that user, set tests.existingSecret, or set tests.enabled=false." $v.tests.user) }}
{{- else if hasKey $testUser "permissions" }}
{{- $canWrite := false }}
{{- range $testUser.permissions }}
{{- if and (eq .access "readwrite") (hasPrefix (toString .prefix) $v.tests.keyPrefix) }}
{{- $canWrite = true }}
{{- end }}
{{- end }}
{{- if not $canWrite }}
{{- $errors = append $errors (printf "tests.user: %q has no readwrite permission on %q, so the helm test cannot write its key. Fix: choose another tests.user, give that user {prefix: %q, access: readwrite}, or change tests.keyPrefix." $v.tests.user $v.tests.keyPrefix $v.tests.keyPrefix) }}
{{- end }}
{{- end }}
{{- end }}

{{- if $errors }}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s\n" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}
