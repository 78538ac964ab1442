{{/*
Names. With the release named "ephemeral-store" these give the old system's
object names: the client Service "ephemeral-store", the headless Service
"ephemeral-store-info", the ConfigMap "ephemeral-store-users" and the root CA
Secret "ephemeral-store-secret".
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "ephemeral-store.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object, as `helm create` makes it: fullnameOverride, or
the release name when it already contains the chart name, or <release>-<chart>.
*/}}
{{- define "ephemeral-store.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "ephemeral-store.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <fullname>-<suffix>, the base shortened so the result stays a valid name. */}}
{{- define "ephemeral-store.suffixed" -}}
{{- $base := include "ephemeral-store.fullname" .root }}
{{- printf "%s-%s" ($base | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
{{- end }}

{{- define "ephemeral-store.clientServiceName" -}}
{{- include "ephemeral-store.fullname" . }}
{{- end }}

{{- define "ephemeral-store.headlessServiceName" -}}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "info") }}
{{- end }}

{{- define "ephemeral-store.metricsServiceName" -}}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "metrics") }}
{{- end }}

{{/* The users ConfigMap: the existing one, or <fullname>-users. */}}
{{- define "ephemeral-store.usersConfigMapName" -}}
{{- if .Values.existingUsersConfigMap }}
{{- .Values.existingUsersConfigMap }}
{{- else }}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "users") }}
{{- end }}
{{- end }}

{{/* The root CA Secret (rootCA.crt, rootCA.key): the old docs' ephemeral-store-secret. */}}
{{- define "ephemeral-store.caSecretName" -}}
{{- if .Values.tls.ca.secretName }}
{{- .Values.tls.ca.secretName }}
{{- else }}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "secret") }}
{{- end }}
{{- end }}

{{/* The Secret with the server certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "ephemeral-store.serverSecretName" -}}
{{- if eq .Values.tls.mode "existing" }}
{{- .Values.tls.existing.serverSecret }}
{{- else }}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "tls") }}
{{- end }}
{{- end }}

{{/* The CA-only Secret (ca.crt, no key) for clients that trust the store. */}}
{{- define "ephemeral-store.caOnlySecretName" -}}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "ca") }}
{{- end }}

{{/* cert-manager: the chart's CA key pair Secret and Issuers. */}}
{{- define "ephemeral-store.certManagerCAName" -}}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "ca-keypair") }}
{{- end }}

{{- define "ephemeral-store.certManagerIssuerName" -}}
{{- if .Values.tls.certManager.issuerRef.name }}
{{- .Values.tls.certManager.issuerRef.name }}
{{- else }}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "issuer") }}
{{- end }}
{{- end }}

{{/*
A user's client certificate Secret: users[].secretName or <fullname>-user-<name>.
Call with (dict "root" $ "user" $user).
*/}}
{{- define "ephemeral-store.userSecretName" -}}
{{- if .user.secretName }}
{{- .user.secretName }}
{{- else }}
{{- printf "%s-user-%s" (include "ephemeral-store.fullname" .root) .user.name }}
{{- end }}
{{- end }}

{{/*
The namespaces of a user's certificate Secret (or Certificate), as a JSON list:
users[].namespace alone when set, else every namespace of clientNamespaces,
else the release namespace. Each gets a certificate of its own, kept and
renewed on its own. Call with (dict "root" $ "user" $user).
*/}}
{{- define "ephemeral-store.namespacesOfUser" -}}
{{- if .user.namespace }}
{{- list (toString .user.namespace) | toJson }}
{{- else if .root.Values.clientNamespaces }}
{{- $out := list }}
{{- range .root.Values.clientNamespaces }}{{ $out = append $out (toString .) }}{{ end }}
{{- $out | uniq | toJson }}
{{- else }}
{{- list .root.Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/*
The client namespaces other than the release's (JSON list, sorted, each once):
the namespaces of users (users[].namespace, clientNamespaces) and
clientCA.namespaces. Each gets the CA-only Secret.
*/}}
{{- define "ephemeral-store.clientNamespaces" -}}
{{- $out := include "ephemeral-store.userNamespaces" . | fromJsonArray }}
{{- range .Values.clientCA.namespaces }}
{{- if ne (toString .) $.Release.Namespace }}{{ $out = append $out (toString .) }}{{ end }}
{{- end }}
{{- $out | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
The namespaces where users' certificate Secrets go, other than the release's
(JSON list, sorted, each once): users[].namespace and clientNamespaces. The
NetworkPolicy admits the pods labelled <fullname>-client there.
*/}}
{{- define "ephemeral-store.userNamespaces" -}}
{{- $out := list }}
{{- range .Values.users }}
{{- with .namespace }}{{ $out = append $out (toString .) }}{{ end }}
{{- end }}
{{- range .Values.clientNamespaces }}
{{- $out = append $out (toString .) }}
{{- end }}
{{- without ($out | uniq | sortAlpha) .Release.Namespace | toJson }}
{{- end }}

{{/*
The CA-only Secret in each client namespace (the old docs'
ephemeral-store-user-rootca-cert): clientCA.secretName, else
<fullname>-user-rootca-cert, which is the old name under release "ephemeral-store".
*/}}
{{- define "ephemeral-store.clientCASecretName" -}}
{{- if .Values.clientCA.secretName }}
{{- .Values.clientCA.secretName }}
{{- else }}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "user-rootca-cert") }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of the store pods. */}}
{{- define "ephemeral-store.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ephemeral-store.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The label that lets a pod reach the client port through the NetworkPolicy. */}}
{{- define "ephemeral-store.clientLabelKey" -}}
{{- include "ephemeral-store.suffixed" (dict "root" . "suffix" "client") | trunc 63 }}
{{- end }}

{{/* The registry of the image: global.imageRegistry when set (a parent chart's or a mirror's), else image.registry; may be empty. */}}
{{- define "ephemeral-store.imageRegistry" -}}
{{- default .Values.image.registry (dig "imageRegistry" "" (default (dict) .Values.global)) | trimSuffix "/" }}
{{- end }}

{{/*
The image reference: [registry/]repository:tag (tag defaults to appVersion) or
[registry/]repository@digest. With the defaults: localhost/ephemeral-store:<appVersion>.
*/}}
{{- define "ephemeral-store.image" -}}
{{- $ref := .Values.image.repository }}
{{- with include "ephemeral-store.imageRegistry" . }}
{{- $ref = printf "%s/%s" . $ref }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $ref .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $ref (toString (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}
{{- end }}

{{/*
The imagePullSecrets of a pod spec: global.imagePullSecrets, then
image.pullSecrets, each a name or a {name: ...} object, without duplicates.
Renders nothing when there are none.
*/}}
{{- define "ephemeral-store.imagePullSecrets" -}}
{{- $names := list }}
{{- range concat (dig "imagePullSecrets" (list) (default (dict) .Values.global)) (default (list) .Values.image.pullSecrets) }}
{{- $name := . }}
{{- if kindIs "map" . }}{{ $name = .name }}{{ end }}
{{- if $name }}{{ $names = append $names (toString $name) }}{{ end }}
{{- end }}
{{- with $names | uniq }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Labels. Selectors use only name, instance and the component "store": name and
instance are immutable per release, and the component keeps the test pod and
any other pod of the release out of the Services and the StatefulSet.
*/}}
{{- define "ephemeral-store.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ephemeral-store.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ephemeral-store.storeSelectorLabels" -}}
{{ include "ephemeral-store.selectorLabels" . }}
app.kubernetes.io/component: store
{{- end }}

{{/* Standard labels of every object; add app.kubernetes.io/component per object. */}}
{{- define "ephemeral-store.labels" -}}
helm.sh/chart: {{ include "ephemeral-store.chart" . }}
{{ include "ephemeral-store.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ephemeral-store
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels with a component: (dict "root" $ "component" "store"). */}}
{{- define "ephemeral-store.componentLabels" -}}
{{ include "ephemeral-store.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* commonAnnotations merged with extra ones: (dict "root" $ "extra" map). Renders nothing when empty. */}}
{{- define "ephemeral-store.annotations" -}}
{{- $all := merge (deepCopy (default (dict) .extra)) (deepCopy (default (dict) .root.Values.commonAnnotations)) }}
{{- if $all }}
{{- printf "annotations:\n%s" (toYaml $all | indent 2) }}
{{- end }}
{{- end }}

{{/* DNS name of the headless Service that --peers-dns resolves. */}}
{{- define "ephemeral-store.peersDNS" -}}
{{- printf "%s.%s.svc.%s" (include "ephemeral-store.headlessServiceName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/* The four DNS names of a Service: (dict "name" n "ns" ns "domain" d). JSON list. */}}
{{- define "ephemeral-store.serviceDNSNames" -}}
{{- list .name (printf "%s.%s" .name .ns) (printf "%s.%s.svc" .name .ns) (printf "%s.%s.svc.%s" .name .ns .domain) | toJson }}
{{- end }}

{{/*
DNS names of the client and headless Services, localhost (for
`kubectl port-forward`) and tls.extraDnsNames (JSON list): what a pod adds
with --san to the certificate it mints. Go: certnames.Release.ServiceDNSNames
(store/certnames); tests/chart/certnames_test.go keeps the two equal.
*/}}
{{- define "ephemeral-store.serviceSANs" -}}
{{- $ns := .Release.Namespace }}
{{- $d := .Values.clusterDomain }}
{{- $names := list }}
{{- range $svc := list (include "ephemeral-store.clientServiceName" .) (include "ephemeral-store.headlessServiceName" .) }}
{{- $names = concat $names (include "ephemeral-store.serviceDNSNames" (dict "name" $svc "ns" $ns "domain" $d) | fromJsonArray) }}
{{- end }}
{{- concat $names (list "localhost") .Values.tls.extraDnsNames | uniq | toJson }}
{{- end }}

{{/*
Every DNS name of the shared server certificate (JSON list): both Services, every
pod (<pod>.<headless>[.<ns>[.svc[.<domain>]]]), the wildcard of the headless
Service, localhost and tls.extraDnsNames. The same certificate is the peer
certificate, so its CN is tls.peerCommonName. Go: certnames.Release.ServerDNSNames.
*/}}
{{- define "ephemeral-store.serverSANs" -}}
{{- $ns := .Release.Namespace }}
{{- $d := .Values.clusterDomain }}
{{- $headless := include "ephemeral-store.headlessServiceName" . }}
{{- $sts := include "ephemeral-store.fullname" . }}
{{- $names := include "ephemeral-store.serviceSANs" . | fromJsonArray }}
{{- range $i := until (int .Values.replicaCount) }}
{{- $names = concat $names (include "ephemeral-store.serviceDNSNames" (dict "name" (printf "%s-%d.%s" $sts $i $headless) "ns" $ns "domain" $d) | fromJsonArray) }}
{{- end }}
{{- $names = concat $names (include "ephemeral-store.serviceDNSNames" (dict "name" (printf "*.%s" $headless) "ns" $ns "domain" $d) | fromJsonArray) }}
{{- $names | uniq | toJson }}
{{- end }}

{{/* How many pods may be down while a majority stays: replicas - (replicas/2 + 1). */}}
{{- define "ephemeral-store.maxUnavailable" -}}
{{- int .Values.pdb.maxUnavailable }}
{{- end }}

{{/* The most pods that may be down while a majority stays: replicas - (replicas/2 + 1). */}}
{{- define "ephemeral-store.quorumMargin" -}}
{{- $r := int .Values.replicaCount }}
{{- sub $r (add (div $r 2) 1) }}
{{- end }}

{{/*
Checksum of the server configuration that is not already in the pod template.
Users are deliberately left out: the store reloads the users directory live,
so editing users must never roll the pods. So is replicaCount: the pods read
it from the StatefulSet while they run, and a scale must not roll them.
*/}}
{{- define "ephemeral-store.configChecksum" -}}
{{- $tls := pick .Values.tls "mode" "peerCommonName" "extraDnsNames" }}
{{- dict "store" .Values.store "ports" .Values.containerPorts "tls" $tls "domain" .Values.clusterDomain | toJson | sha256sum }}
{{- end }}

{{/* secretName of the users entry named tests.user, if any. */}}
{{- define "ephemeral-store.testUserSecretName" -}}
{{- range .Values.users }}
{{- if eq (toString .name) (toString $.Values.tests.user) }}
{{- with .secretName }}{{ . }}{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* What both containers of the helm test pod share. */}}
{{- define "ephemeral-store.testContainerCommon" -}}
resources:
  {{- toYaml .Values.tests.resources | nindent 2 }}
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  privileged: false
  readOnlyRootFilesystem: true
  capabilities:
    drop:
      - ALL
volumeMounts:
  - name: user
    mountPath: /etc/ephemeral-store/user
    readOnly: true
{{- end }}

{{/*
"true" when the pod passes its memory limit to serve, for Go's soft memory
limit (store.memoryLimitRatio, 0 leaves Go's default) and the data quota
(store.quotaBytes 0: a share of the limit): a memory limit is set. Without
a limit the downward API would give the node's allocatable memory instead.
*/}}
{{- define "ephemeral-store.memoryLimit" -}}
{{- $limits := (.Values.resources | default dict).limits | default dict -}}
{{- if $limits.memory -}}true{{- end -}}
{{- end -}}
