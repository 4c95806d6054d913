{{- define "modelyard.name" -}}modelyard-operator{{- end -}}

{{- define "modelyard.labels" -}}
app.kubernetes.io/name: modelyard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "modelyard.selector" -}}
app.kubernetes.io/name: modelyard
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* An image reference: (dict "image" .Values.<x>.image "root" $); <imageRegistry>/<repository>:<tag or appVersion>. */}}
{{- define "modelyard.image" -}}
{{- $registry := .root.Values.imageRegistry | default "" | trimSuffix "/" -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}
