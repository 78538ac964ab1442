{{/* The text of NOTES.txt, as a named template so that tests can render it with `helm template`. */}}
{{- define "ephemeral-store.notes" -}}
{{- $fullname := include "ephemeral-store.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $svc := include "ephemeral-store.clientServiceName" . -}}
{{- $mode := .Values.tls.mode -}}
{{- $user := .Values.tests.user -}}
{{- $userSecret := "" -}}
{{- $userSecretNs := $ns -}}
{{- range .Values.users }}{{ if and .createSecret (not $userSecret) }}{{ $user = .name }}{{ $userSecret = include "ephemeral-store.userSecretName" (dict "root" $ "user" .) }}
{{- /* Where to read that Secret: the release namespace if it is there, else its first namespace. */}}
{{- $in := include "ephemeral-store.namespacesOfUser" (dict "root" $ "user" .) | fromJsonArray }}{{ if not (has $ns $in) }}{{ $userSecretNs = first $in }}{{ end }}{{ end }}{{ end -}}
{{- $caReadable := or (has $mode (list "generate" "certManager")) .Values.tls.ca.create (not (empty (lookup "v1" "Secret" $ns (include "ephemeral-store.caSecretName" .)))) -}}
ephemeral-store {{ .Chart.AppVersion }} is starting as release "{{ .Release.Name }}" in namespace "{{ $ns }}":
{{ .Values.replicaCount }} pods (a majority of {{ add (div (int .Values.replicaCount) 2) 1 }} keeps the data; it is never written to disk).

  client Service   {{ $svc }}:{{ .Values.service.port }} (HTTPS, a client certificate is required)
  headless Service {{ include "ephemeral-store.headlessServiceName" . }} (peer discovery)
  users ConfigMap  {{ include "ephemeral-store.usersConfigMapName" . }} (edit it: users change without a restart)

Wait until every pod is ready:

  kubectl -n {{ $ns }} rollout status statefulset/{{ $fullname }}

1. The Secrets
{{- if eq $mode "generate" }}

  {{ include "ephemeral-store.caSecretName" . }}  root CA ({{ include "ephemeral-store.caKeys" . | fromJson | dig "keys" (list) | join ", " }}): signs user certificates. Keep it private.
  {{ include "ephemeral-store.serverSecretName" . }}  the store's server and peer certificate (tls.crt, tls.key, ca.crt)
{{- else if eq $mode "caSecret" }}

  {{ include "ephemeral-store.caSecretName" . }}  root CA ({{ include "ephemeral-store.caKeys" . | fromJson | dig "keys" (list) | join ", " }}): the store pods mint their own
      certificates from it{{ if not .Values.tls.ca.create }} (you created it; the chart does not manage it){{ end }}.
{{- else if eq $mode "existing" }}

  {{ .Values.tls.existing.serverSecret }}  your server certificate{{ with .Values.tls.existing.caSecret }}; {{ . }}: your root CA (certificate only){{ end }}
{{- else }}

  cert-manager issues {{ include "ephemeral-store.serverSecretName" . }} (server) and the user Secrets below and renews them;
  the store reloads renewed certificates without a restart.
{{- end }}
{{- if $userSecret }}
  {{- if $caReadable }}
  {{- range .Values.users }}{{ if .createSecret }}
  {{ include "ephemeral-store.userSecretName" (dict "root" $ "user" .) }}  client certificate of user "{{ .name }}" (tls.crt, tls.key, ca.crt){{ $userNs := include "ephemeral-store.namespacesOfUser" (dict "root" $ "user" .) | fromJsonArray }}{{ if ne (toJson $userNs) (toJson (list $ns)) }} in namespace{{ if gt (len $userNs) 1 }}s{{ end }} {{ join ", " $userNs }}{{ end }}: mount it in client workloads
  {{- end }}{{ end }}
  {{- else }}

  No user certificate Secrets were created: the root CA Secret {{ include "ephemeral-store.caSecretName" . }} could not be
  read at install time. Create it, then run `helm upgrade` again, or sign certificates yourself:
    ephemeral-store certs --out ./certs --ca-cert rootCA.crt --ca-key rootCA.key --user {{ $user }}
  {{- end }}
{{- end }}
{{- if and .Values.tls.caOnlySecret.create $caReadable (has $mode (list "generate" "caSecret")) }}
  {{ include "ephemeral-store.caOnlySecretName" . }}  ca.crt only: lets a client trust the store without being able to sign anything
{{- end }}
{{- with include "ephemeral-store.clientNamespaces" . | fromJsonArray }}
{{- if and $.Values.clientCA.create $caReadable }}
  {{ include "ephemeral-store.clientCASecretName" $ }}  {{ $.Values.clientCA.key }} only (the root CA certificate), in namespace{{ if gt (len .) 1 }}s{{ end }} {{ join ", " . }}{{ if eq $mode "certManager" }} (written by trust-manager){{ end }}
{{- end }}
{{- end }}

  A client workload mounts its user Secret and is labelled so the NetworkPolicy lets it in:
    metadata:
      labels:
        {{ include "ephemeral-store.clientLabelKey" . }}: "true"
    spec:
      volumes:
        - name: store-certificate
          secret:
            secretName: {{ default (printf "%s-user-<name>" $fullname) $userSecret }}
      # mounted at /etc/store: --cert /etc/store/tls.crt --key /etc/store/tls.key --cacert /etc/store/ca.crt
{{- if $userSecret }}

2. Use the store with the certificate of user "{{ $user }}"

  kubectl -n {{ $userSecretNs }} get secret {{ $userSecret }} -o jsonpath='{.data.tls\.crt}' | base64 -d > {{ $user }}.crt
  kubectl -n {{ $userSecretNs }} get secret {{ $userSecret }} -o jsonpath='{.data.tls\.key}' | base64 -d > {{ $user }}.key
  kubectl -n {{ $userSecretNs }} get secret {{ $userSecret }} -o jsonpath='{.data.ca\.crt}'  | base64 -d > ca.crt
  kubectl -n {{ $ns }} port-forward svc/{{ $svc }} 8087:{{ .Values.service.port }} &

  curl --cacert ca.crt --cert {{ $user }}.crt --key {{ $user }}.key -X PUT --data world https://localhost:8087/v1/kv/hello
  curl --cacert ca.crt --cert {{ $user }}.crt --key {{ $user }}.key https://localhost:8087/v1/kv/hello

  ephemeral-store put --endpoints https://localhost:8087 --cert {{ $user }}.crt --key {{ $user }}.key --cacert ca.crt hello world
  ephemeral-store get --endpoints https://localhost:8087 --cert {{ $user }}.crt --key {{ $user }}.key --cacert ca.crt hello

  Inside the cluster the endpoint is https://{{ $svc }}.{{ $ns }}.svc.{{ .Values.clusterDomain }}:{{ .Values.service.port }}
{{- else }}

2. Use the store

  No user has createSecret: true. Sign a user certificate with the root CA (CN = user name):
    ephemeral-store certs --out ./certs --ca-cert rootCA.crt --ca-key rootCA.key --user myuser
  then:
    ephemeral-store get --endpoints https://{{ $svc }}.{{ $ns }}.svc.{{ .Values.clusterDomain }}:{{ .Values.service.port }} --cert certs/myuser.crt --key certs/myuser.key --cacert certs/rootCA.crt hello
{{- end }}
{{- if .Values.tests.enabled }}

3. Check it: helm test {{ .Release.Name }} -n {{ $ns }} --logs
{{- end }}
{{- /* Warnings about unsafe or surprising values. */}}
{{- $warnings := list }}
{{- if eq .Values.podAntiAffinityPreset "soft" }}{{ if not .Values.affinity }}
{{- $warnings = append $warnings "podAntiAffinityPreset=soft: two store pods may share a node, and losing that node loses two replicas at once. Use hard in production (needs a node per replica)." }}
{{- end }}{{ end }}
{{- if and (not .Values.podAntiAffinityPreset) (not .Values.affinity) (not .Values.topologySpreadConstraints) }}
{{- $warnings = append $warnings "No anti-affinity and no topology spread: the scheduler may put a majority of the store on one node, and one node failure then loses all data." }}
{{- end }}
{{- if eq $mode "caSecret" }}
{{- $warnings = append $warnings "tls.mode=caSecret: every store pod holds the root CA key and anyone who reads it can mint a certificate for any user. Prefer tls.mode generate, existing or certManager when pods should not be able to sign." }}
{{- end }}
{{- if not .Values.networkPolicy.enabled }}
{{- $warnings = append $warnings "networkPolicy.enabled=false: any pod may reach the client and peer ports (certificates still guard them)." }}
{{- else if .Values.networkPolicy.allowExternal }}
{{- $warnings = append $warnings "networkPolicy.allowExternal=true: any pod may reach the client port (a client certificate is still required)." }}
{{- end }}
{{- if ne .Values.service.type "ClusterIP" }}
{{- $warnings = append $warnings (printf "service.type=%s exposes the store outside the cluster; make sure the generated certificates carry the external name (tls.extraDnsNames)." .Values.service.type) }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.allowExternal) (not .Values.networkPolicy.extraIngress) }}
{{- $warnings = append $warnings (printf "service.type=%s, but the NetworkPolicy admits on the client port only labelled pods of the cluster: clients outside it are dropped. Admit them with networkPolicy.extraIngress (an ipBlock of their addresses on port client) or networkPolicy.allowExternal=true." .Values.service.type) }}
{{- end }}
{{- end }}
{{- if not .Values.pdb.create }}
{{- $warnings = append $warnings "pdb.create=false: a node drain may evict a majority at once, and then all data is lost." }}
{{- else if gt (int .Values.pdb.maxUnavailable) 1 }}
{{- $warnings = append $warnings (printf "pdb.maxUnavailable=%d: a drain may take %d pods at once, and one more fault while they catch up is a majority loss that empties the store (chart README, Operations)." (int .Values.pdb.maxUnavailable) (int .Values.pdb.maxUnavailable)) }}
{{- end }}
{{- if and (not .Values.users) (not .Values.existingUsersConfigMap) }}
{{- $warnings = append $warnings "users is empty: nobody can use the store until users are added." }}
{{- end }}
{{- range .Values.users }}
{{- if not (hasKey . "permissions") }}
{{- $warnings = append $warnings (printf "user %q has no permissions list: it may read and write every key." (toString .name)) }}
{{- end }}
{{- end }}
{{- if eq $mode "generate" }}
{{- $warnings = append $warnings "tls.mode=generate keeps certificates across `helm upgrade` by reading them back with lookup; GitOps tools that render with `helm template` would re-generate them on every sync (use certManager or existing there)." }}
{{- end }}
{{- if or (eq (toString .Values.image.tag) "latest") (eq .Values.image.pullPolicy "Always") }}
{{- $warnings = append $warnings "image: a moving tag or pullPolicy=Always restarts pods on different code during a rollout; pin a tag or digest." }}
{{- end }}
{{- if not .Values.resources.limits }}
{{- $warnings = append $warnings "resources.limits is empty: an in-memory store can grow until the node runs out of memory." }}
{{- end }}
{{- if lt (int64 .Values.store.quotaBytes) 0 }}
{{- $warnings = append $warnings "store.quotaBytes=-1: no data quota; a write burst past the memory limit OOM-kills every pod at once (each holds every key), a majority loss that empties the store." }}
{{- end }}
{{- if $warnings }}

WARNINGS
{{- range $warnings }}
  - {{ . }}
{{- end }}
{{- end }}
{{- end }}
