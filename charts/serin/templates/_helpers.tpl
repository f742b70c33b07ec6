{{/* Names and labels shared by every template. */}}
{{- define "serin.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "serin.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "serin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "serin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "serin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "serin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "serin.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The controller Deployments as a YAML list of {name, shard, selector, lease}: one without
`shards`; with them, one per shard (Canaries labelled sharding.fluxcd.io/key=<shard>, Lease
serin-leader-<shard>) and one for the Canaries without the label (serin-leader-unlabelled), the
names `serin controller` derives from the selector itself. */}}
{{- define "serin.deployments" -}}
{{- $full := include "serin.fullname" . }}
{{- if not .Values.shards }}
- name: {{ $full }}
{{- else }}
{{- range .Values.shards }}
{{- if eq . "unlabelled" }}
{{- fail "shards must not name unlabelled: that is the Deployment for Canaries without sharding.fluxcd.io/key" }}
{{- end }}
- name: {{ printf "%s-%s" $full . | trunc 63 | trimSuffix "-" }}
  shard: {{ . }}
  selector: {{ printf "sharding.fluxcd.io/key=%s" . | quote }}
  lease: serin-leader-{{ . }}
{{- end }}
- name: {{ printf "%s-unlabelled" $full | trunc 63 | trimSuffix "-" }}
  shard: unlabelled
  selector: "!sharding.fluxcd.io/key"
  lease: serin-leader-unlabelled
{{- end }}
{{- end }}

{{/* The namespace whose Canaries are watched with rbac.scope=namespace (required there). */}}
{{- define "serin.watchNamespace" -}}
{{- if eq .Values.rbac.scope "namespace" }}
{{- required "namespace is required when rbac.scope is namespace" .Values.namespace }}
{{- else }}
{{- .Values.namespace }}
{{- end }}
{{- end }}

{{/* The value of --secret-namespaces ("none", "a,b", or empty for the default `*`), checked
against the values: names need tracking on, and must be the watched namespace when one is set. */}}
{{- define "serin.secretNamespaces" -}}
{{- $names := .Values.secretTracking.namespaces }}
{{- if not .Values.secretTracking.enabled }}
{{- if $names }}
{{- fail "secretTracking.namespaces must be empty when secretTracking.enabled is false" }}
{{- end }}
{{- "none" }}
{{- else if $names }}
{{- $watched := include "serin.watchNamespace" . }}
{{- range $names }}
{{- if and $watched (ne . $watched) }}
{{- fail (printf "secretTracking.namespaces names %s, which namespace=%s does not watch" . $watched) }}
{{- end }}
{{- end }}
{{- join "," $names }}
{{- end }}
{{- end }}

{{/* Config tracking's Secret rules (serin::rbac's Needed::SecretTracking), granted where Secrets
are tracked: in the ClusterRole/Role, or in a Role per secretTracking.namespaces entry. */}}
{{- define "serin.secretTrackingRules" -}}
# Tracked Secrets: metadata watched (never values), data read when one changed, copied to
# -primary. RBAC cannot limit create to the -primary names.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
{{- end }}

{{- /* The routers.<name> values a provider's Canaries need, comma-separated (any one is enough:
Linkerd runs on the Gateway API or SMI); empty for kubernetes, which needs none. */}}
{{- define "serin.routerValues" -}}
{{- if hasPrefix "gatewayapi" . }}gatewayApi
{{- else if eq . "istio" }}istio
{{- else if eq . "linkerd" }}gatewayApi,smi
{{- else if eq . "nginx" }}nginx
{{- else if eq . "skipper" }}skipper
{{- else if eq . "contour" }}contour
{{- else if eq . "traefik" }}traefik
{{- else if eq . "apisix" }}apisix
{{- else if eq . "kuma" }}kuma
{{- else if eq . "gloo" }}gloo
{{- else if eq . "knative" }}knative
{{- end }}
{{- end }}

{{- /* Whether one of the routers.<name> values in .need is on (.routers: .Values.routers). */}}
{{- define "serin.routerOn" -}}
{{- $routers := .routers }}
{{- range splitList "," .need }}{{ if index $routers . }}on{{ end }}{{ end }}
{{- end }}

{{/* "on" when the dashboard may act (dashboard.actions), which needs the dashboard itself; checks
that the dashboard's port is not the metrics port. */}}
{{- define "serin.dashboardActions" -}}
{{- if and .Values.dashboard.enabled (eq (int .Values.dashboard.port) (int .Values.metrics.port)) }}
{{- fail "dashboard.port must differ from metrics.port" }}
{{- end }}
{{- if .Values.dashboard.actions }}
{{- if not .Values.dashboard.enabled }}
{{- fail "dashboard.actions needs dashboard.enabled: actions are taken in the dashboard" }}
{{- end }}
{{- "on" }}
{{- end }}
{{- end }}

{{/* The dashboard actions' rules (serin::rbac's DASHBOARD_ACTIONS_RBAC): cluster-scoped reviews,
so always in a ClusterRole. */}}
{{- define "serin.dashboardActionsRules" -}}
# Dashboard actions: who a browser's bearer token belongs to (TokenReview), then whether that
# user may patch the Canary (SubjectAccessReview); only then does the controller act.
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
