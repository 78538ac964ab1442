{{/*
How each TLS mode reaches the server: the Secret volumes, where they are
mounted (docs/interfaces.md "Files mounted in the pod") and the serve flags.

  generate, certManager: server Secret -> /etc/ephemeral-store/tls/{tls.crt,tls.key,ca.crt}
                         --tls-cert --tls-key --tls-ca
  existing:              your server Secret -> /etc/ephemeral-store/tls (keys mapped to
                         tls.crt, tls.key[, ca.crt]); optional root CA Secret, certificate
                         only -> /etc/ephemeral-store/ca/rootCA.crt
  caSecret:              root CA Secret -> /etc/ephemeral-store/ca/{rootCA.crt,rootCA.key}
                         --tls-ca --tls-ca-key --san <Service names>: each pod mints its own
                         serving and peer certificate in memory

The root CA Secret's keys are tls.ca.certKey/keyKey, or tls.crt/tls.key when
those are the defaults and the Secret was made by `kubectl create secret tls`
(the old docs' command); see ephemeral-store.caSecretKeys.
  any mode:              tls.clientCA.existingSecret -> /etc/ephemeral-store/client-ca/ca.crt
                         --client-ca
*/}}

{{/*
The data of Secret .name in namespace .namespace (default: the release
namespace), as JSON: {} when it does not exist, and always under `helm
template` and a client-side --dry-run, which cannot read the cluster. The one
place the TLS templates call lookup, so that the chart tests can stand in for
the cluster. Reading another namespace needs Helm's credentials to get Secrets there.
Call with (dict "root" $ "name" $secretName ["namespace" $ns]).
*/}}
{{- define "ephemeral-store.lookupSecret" -}}
{{- if .name }}
{{- lookup "v1" "Secret" (default .root.Release.Namespace .namespace) .name | default (dict) | toJson }}
{{- else }}
{{- /* lookup with an empty name would list every Secret of the namespace. */}}
{{- dict | toJson }}
{{- end }}
{{- end }}

{{/*
Which keys of a CA Secret hold the CA, as JSON {"keys": [...], "found": bool}.
Call with (dict "root" $ "name" secret "want" (list key...) "defaults" (list
key...) "legacy" (list key...) "params" "value names, for messages").

  - the Secret has every wanted key: those, found;
  - the wanted keys are the chart's defaults (rootCA.crt, rootCA.key) and the
    Secret has the legacy keys instead (tls.crt, tls.key: what the old docs'
    `kubectl create secret tls ephemeral-store-secret --cert=rootCA.crt
    --key=rootCA.key` writes): the legacy keys, found;
  - the Secret cannot be read (absent, or helm template / --dry-run): the
    wanted keys, not found (the caller decides whether that is an error);
  - the Secret exists with neither: the render fails, naming the Secret and
    the keys it looked for.

Keys set to anything but the defaults never fall back.
*/}}
{{- define "ephemeral-store.caSecretKeys" -}}
{{- $secret := include "ephemeral-store.lookupSecret" (dict "root" .root "name" .name) | fromJson }}
{{- $data := dig "data" (dict) $secret }}
{{- $hasWanted := true }}
{{- range .want }}{{ if not (hasKey $data .) }}{{ $hasWanted = false }}{{ end }}{{ end }}
{{- $isDefault := eq (toJson .want) (toJson .defaults) }}
{{- $hasLegacy := true }}
{{- range .legacy }}{{ if not (hasKey $data .) }}{{ $hasLegacy = false }}{{ end }}{{ end }}
{{- if $hasWanted }}
{{- dict "keys" .want "found" true | toJson }}
{{- else if and $isDefault $hasLegacy }}
{{- dict "keys" .legacy "found" true | toJson }}
{{- else if $secret }}
{{- $have := keys $data | sortAlpha | join ", " | default "no keys at all" }}
{{- if $isDefault }}
{{- fail (printf "\n\n%s: the CA Secret %q in namespace %q has neither the keys %s (the chart's defaults) nor %s (what `kubectl create secret tls` writes); it has %s. Fix: recreate it with one of those pairs (kubectl create secret tls %s --cert=rootCA.crt --key=rootCA.key), or set %s to the keys that hold the CA." .params .name .root.Release.Namespace (join ", " .want) (join ", " .legacy) $have .name .params) }}
{{- else }}
{{- $missing := list }}
{{- range .want }}{{ if not (hasKey $data .) }}{{ $missing = append $missing . }}{{ end }}{{ end }}
{{- fail (printf "\n\n%s: the CA Secret %q in namespace %q was looked up for the keys %s, but lacks %s; it has %s. Fix: set %s to the keys that hold the CA (keys other than the defaults never fall back to tls.crt/tls.key), or add the missing keys to the Secret." .params .name .root.Release.Namespace (join ", " .want) (join ", " $missing) $have .params) }}
{{- end }}
{{- else }}
{{- dict "keys" .want "found" false | toJson }}
{{- end }}
{{- end }}

{{/* The keys of the root CA Secret (tls.ca): ephemeral-store.caSecretKeys for tls.ca.certKey and tls.ca.keyKey. */}}
{{- define "ephemeral-store.caKeys" -}}
{{- include "ephemeral-store.caSecretKeys" (dict "root" . "name" (include "ephemeral-store.caSecretName" .) "want" (list .Values.tls.ca.certKey .Values.tls.ca.keyKey) "defaults" (list "rootCA.crt" "rootCA.key") "legacy" (list "tls.crt" "tls.key") "params" "tls.ca.certKey, tls.ca.keyKey") }}
{{- end }}

{{/* The key of the CA certificate in tls.existing.caSecret: ephemeral-store.caSecretKeys for tls.existing.caSecretKey. */}}
{{- define "ephemeral-store.existingCAKey" -}}
{{- $r := include "ephemeral-store.caSecretKeys" (dict "root" . "name" .Values.tls.existing.caSecret "want" (list .Values.tls.existing.caSecretKey) "defaults" (list "rootCA.crt") "legacy" (list "tls.crt") "params" "tls.existing.caSecretKey") | fromJson }}
{{- index $r.keys 0 }}
{{- end }}

{{- define "ephemeral-store.tlsArgs" -}}
{{- $mode := .Values.tls.mode }}
{{- if eq $mode "caSecret" }}
- --tls-ca=/etc/ephemeral-store/ca/rootCA.crt
- --tls-ca-key=/etc/ephemeral-store/ca/rootCA.key
{{- range include "ephemeral-store.serviceSANs" . | fromJsonArray }}
- --san={{ . }}
{{- end }}
{{- else }}
- --tls-cert=/etc/ephemeral-store/tls/tls.crt
- --tls-key=/etc/ephemeral-store/tls/tls.key
{{- if and (eq $mode "existing") .Values.tls.existing.caSecret }}
- --tls-ca=/etc/ephemeral-store/ca/rootCA.crt
{{- else }}
- --tls-ca=/etc/ephemeral-store/tls/ca.crt
{{- end }}
{{- end }}
{{- if .Values.tls.clientCA.existingSecret }}
- --client-ca=/etc/ephemeral-store/client-ca/ca.crt
{{- end }}
- --peer-cn={{ .Values.tls.peerCommonName }}
{{- end }}

{{- define "ephemeral-store.tlsVolumes" -}}
{{- $mode := .Values.tls.mode }}
{{- if eq $mode "caSecret" }}
{{- $ca := include "ephemeral-store.caKeys" . | fromJson }}
- name: ca
  secret:
    secretName: {{ include "ephemeral-store.caSecretName" . }}
    defaultMode: 288  # 0440: owner and fsGroup read
    items:
      - key: {{ index $ca.keys 0 }}
        path: rootCA.crt
      - key: {{ index $ca.keys 1 }}
        path: rootCA.key
{{- else if eq $mode "existing" }}
{{- $e := .Values.tls.existing }}
- name: tls
  secret:
    secretName: {{ $e.serverSecret }}
    defaultMode: 288  # 0440: owner and fsGroup read
    items:
      - key: {{ $e.certKey }}
        path: tls.crt
      - key: {{ $e.keyKey }}
        path: tls.key
      {{- if not $e.caSecret }}
      - key: {{ $e.caKey }}
        path: ca.crt
      {{- end }}
{{- if $e.caSecret }}
- name: ca
  secret:
    secretName: {{ $e.caSecret }}
    defaultMode: 288  # 0440: owner and fsGroup read
    items:
      # The certificate only: the store never needs this CA's key.
      - key: {{ include "ephemeral-store.existingCAKey" $ }}
        path: rootCA.crt
{{- end }}
{{- else }}
- name: tls
  secret:
    secretName: {{ include "ephemeral-store.serverSecretName" . }}
    defaultMode: 288  # 0440: owner and fsGroup read
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- with .Values.tls.clientCA.existingSecret }}
- name: client-ca
  secret:
    secretName: {{ . }}
    defaultMode: 288  # 0440: owner and fsGroup read
    items:
      - key: {{ $.Values.tls.clientCA.key }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "ephemeral-store.tlsVolumeMounts" -}}
{{- $mode := .Values.tls.mode }}
{{- if ne $mode "caSecret" }}
- name: tls
  mountPath: /etc/ephemeral-store/tls
  readOnly: true
{{- end }}
{{- if or (eq $mode "caSecret") (and (eq $mode "existing") .Values.tls.existing.caSecret) }}
- name: ca
  mountPath: /etc/ephemeral-store/ca
  readOnly: true
{{- end }}
{{- if .Values.tls.clientCA.existingSecret }}
- name: client-ca
  mountPath: /etc/ephemeral-store/client-ca
  readOnly: true
{{- end }}
{{- end }}

{{/*
The CA-only Secret of a client namespace: the old docs'
ephemeral-store-user-rootca-cert, the root CA certificate under clientCA.key
(rootCA.crt), never its key. Call with (dict "root" $ "namespace" ns "cert" PEM).
*/}}
{{- define "ephemeral-store.clientCASecret" }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "ephemeral-store.clientCASecretName" .root }}
  namespace: {{ .namespace }}
  labels:
    {{- include "ephemeral-store.componentLabels" (dict "root" .root "component" "client-ca") | nindent 4 }}
  {{- with include "ephemeral-store.annotations" (dict "root" .root) }}{{ . | nindent 2 }}{{ end }}
type: Opaque
data:
  {{ .root.Values.clientCA.key }}: {{ .cert | b64enc }}
{{- end }}
