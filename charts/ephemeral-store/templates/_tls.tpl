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
  any mode:              tls.clientCA.existingSecret -> /etc/ephemeral-store/client-ca/ca.crt
                         --client-ca
*/}}

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
- name: ca
  secret:
    secretName: {{ include "ephemeral-store.caSecretName" . }}
    defaultMode: 288  # 0440: owner and fsGroup read
    items:
      - key: {{ .Values.tls.ca.certKey }}
        path: rootCA.crt
      - key: {{ .Values.tls.ca.keyKey }}
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
      - key: {{ $e.caSecretKey }}
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
