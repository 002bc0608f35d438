{{/* Names and labels shared by every template. */}}

{{- define "plinth-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "plinth-operator.fullname" -}}
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

{{/* Cluster-scoped objects carry the namespace so two releases of the same name in different
namespaces do not collide. */}}
{{- define "plinth-operator.clusterName" -}}
{{- printf "%s-%s" (include "plinth-operator.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "plinth-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "plinth-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plinth-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "plinth-operator.labels" -}}
helm.sh/chart: {{ include "plinth-operator.chart" . }}
{{ include "plinth-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: plinth
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "plinth-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "plinth-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "plinth-operator.leaseName" -}}
{{- default (include "plinth-operator.fullname" .) .Values.operator.leaseName }}
{{- end }}

{{- define "plinth-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The operator's RBAC, from the one file that lists it (files/rbac-rules.yaml). Fails the
render when the file is missing or lacks the key, so the chart never ships empty rules. */}}
{{- define "plinth-operator.rbacRules" -}}
{{- $file := .root.Files.Get "files/rbac-rules.yaml" }}
{{- if not $file }}
{{- fail "files/rbac-rules.yaml is missing from the chart" }}
{{- end }}
{{- $rules := fromYaml $file }}
{{- if hasKey $rules "Error" }}
{{- fail (printf "files/rbac-rules.yaml does not parse: %s" $rules.Error) }}
{{- end }}
{{- $list := index $rules .key }}
{{- if not $list }}
{{- fail (printf "files/rbac-rules.yaml has no %s" .key) }}
{{- end }}
{{- toYaml $list }}
{{- end }}
