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

{{/* An image reference: (dict "image" .Values.<x>.image "root" $);
<imageRegistry>/<repository>:<tag or appVersion>, and @<digest> when a digest pins it. */}}
{{- define "modelyard.image" -}}
{{- $registry := .root.Values.imageRegistry | default "" | trimSuffix "/" -}}
{{- if $registry }}{{ $registry }}/{{ end }}{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- with .image.digest }}@{{ . }}{{ end }}
{{- end -}}

{{/*
The operator's namespaced permissions: exactly the calls it makes (operator/modelyard_operator/kube.py through
lightkube, and kopf's own), reviewed against the golden lists in tests/integration/golden/. No wildcards, no
Secrets, no pods/exec, no get/update where a patch or list is all it does. Server-side apply is a PATCH that
creates a missing object, which the API server authorizes as "create" too.
*/}}
{{- define "modelyard.operatorRules" -}}
# kopf: list+watch its resources, merge-patch their annotations (progress, diff base); the operator reads them
- apiGroups: ["modelyard.dev"]
  resources: ["modelversions", "modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
# status is written with merge patches on the status subresource (kopf and the operator)
- apiGroups: ["modelyard.dev"]
  resources: ["modelversions/status", "modeldeployments/status"]
  verbs: ["patch"]
# children carry ownerReferences with blockOwnerDeletion: clusters with the OwnerReferencesPermissionEnforcement
# admission plugin (OpenShift) require update on the owner's finalizers subresource for that
- apiGroups: ["modelyard.dev"]
  resources: ["modelversions/finalizers", "modeldeployments/finalizers"]
  verbs: ["update"]
# the model's Deployments: server-side apply, list and watch its own, delete the replaced version's
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Services: watched (an in-memory index tells which ones need writing) and server-side applied; the garbage
# collector deletes them
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch"]
# the inPod router's weights ConfigMap: server-side apply only
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "patch"]
# spec.autoscaling's HorizontalPodAutoscaler: applied, and deleted when autoscaling is turned off
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["create", "patch", "delete"]
# the gatewayAPI router's HTTPRoute: applied, and deleted when the router changes
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["create", "patch", "delete"]
# ModelVersion validation: one Job per version, applied and watched; once it finished, its pods are listed and
# the result read from the termination message of the one the Job created (no watch on pods). A ModelDeployment's
# model pods are listed too while its Deployment rolls out: a server that cannot start says why in its termination
# message
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# per-ModelDeployment NetworkPolicies: watched (an index tells which need writing) and server-side applied; the
# garbage collector deletes them. Granted with operator.networkPolicies.enabled false too: the operator's watch on
# them does not depend on the switch, and it writes none then
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch"]
# a ModelVersion's credentialsSecret is checked for its opt-in label (modelyard.dev/artifact-credentials) before
# any pod mounts it: read as PartialObjectMetadata (the values never reach the operator; docs/security.md)
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# kopf.event posts core/v1 Events
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
