{{/*
Chart name, truncated to a DNS label.
*/}}
{{- define "gppscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the DaskJob's name, which the dask-kubernetes operator reuses as the DaskCluster's name
(controller.daskjob_create_components: cluster_name = name) and derives `<name>-scheduler`,
`<name>-default`, `<name>-runner` and `<name>-default-worker-<10 hex>` from. 40 characters keep those within
63 (the operator refuses cluster names over 53).
*/}}
{{- define "gppscale.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gppscale.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. The operator copies the DaskJob's labels onto the DaskCluster and every pod it creates.
*/}}
{{- define "gppscale.labels" -}}
helm.sh/chart: {{ include "gppscale.chart" . }}
{{ include "gppscale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gppscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gppscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gppscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gppscale.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gppscale.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "gppscale.gpuImage" -}}
{{- $repository := .Values.gpu.image.repository | default .Values.image.repository }}
{{- $tag := .Values.gpu.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/*
Pod-level settings shared by the runner, scheduler and workers: identity, security, pull secrets.
*/}}
{{- define "gppscale.podSpecCommon" -}}
serviceAccountName: {{ include "gppscale.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.securityContext.runAsUser }}
  runAsGroup: {{ .Values.securityContext.runAsGroup }}
  fsGroup: {{ .Values.securityContext.fsGroup }}
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Container securityContext (every container; repeated from the pod level so each one stands alone).
*/}}
{{- define "gppscale.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Environment of every container. HOME and the caches point at /tmp because the root filesystem is
read-only; DASK_TEMPORARY_DIRECTORY is Dask's local (spill) directory.
*/}}
{{- define "gppscale.env" -}}
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: MPLCONFIGDIR
  value: /tmp/.config/matplotlib
- name: DASK_TEMPORARY_DIRECTORY
  value: /scratch
- name: PYTHONUNBUFFERED
  value: "1"
# Dask's nanny takes these over its MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold at
# 128 KiB and makes training 2-3x slower in page faults (gppscale.compute.WORKER_MALLOC).
- name: MALLOC_TRIM_THRESHOLD_
  value: "134217728"
- name: MALLOC_MMAP_THRESHOLD_
  value: "67108864"
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Writable volumes; the argument is a dict with "root" (the chart context) and "scratch" (a size limit).
*/}}
{{- define "gppscale.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmpSizeLimit | quote }}
- name: scratch
  emptyDir:
    sizeLimit: {{ .scratch | quote }}
{{- end }}

{{- define "gppscale.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: scratch
  mountPath: /scratch
{{- end }}

{{/*
A Dask worker container; the argument is a dict with "root", "name", "image", "nthreads", "resources"
and "gpu" (bool). The operator adds DASK_SCHEDULER_ADDRESS (which `dask worker` reads as
scheduler-address) and DASK_WORKER_NAME (the name it retires workers by) to the env.
*/}}
{{- define "gppscale.workerContainer" -}}
- name: {{ .name }}
  image: {{ .image }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: ["dask"]
  args:
    - worker
    - --name
    - $(DASK_WORKER_NAME)
    - --nthreads
    - {{ .nthreads | quote }}
    - --dashboard
    - --dashboard-address
    - "8788"
    {{- if .gpu }}
    # Training tasks ask for the Dask resource GPU: 1; only these workers offer it.
    - --resources
    - GPU=1
    {{- end }}
  ports:
    - name: http-dashboard
      containerPort: 8788
      protocol: TCP
  env:
    {{- include "gppscale.env" .root | nindent 4 }}
  resources:
    {{- if .gpu }}
    {{- $resources := deepCopy .resources }}
    {{- $limits := get $resources "limits" | default dict }}
    {{- $_ := set $limits "nvidia.com/gpu" "1" }}
    {{- $_ := set $resources "limits" $limits }}
    {{- toYaml $resources | nindent 4 }}
    {{- else }}
    {{- toYaml .resources | nindent 4 }}
    {{- end }}
  securityContext:
    {{- include "gppscale.containerSecurityContext" .root | nindent 4 }}
  volumeMounts:
    {{- include "gppscale.scratchMounts" .root | nindent 4 }}
{{- end }}

{{/*
Scheduling of one kind of pod; the argument is the values block (job, scheduler, worker or gpu).
*/}}
{{- define "gppscale.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Pod metadata for one component; the argument is a dict with "root", "component" and optional
"annotations" (merged with podAnnotations). The operator copies it onto the pods it creates.
*/}}
{{- define "gppscale.podMetadata" -}}
{{- $annotations := merge (dict) (.annotations | default dict) (.root.Values.podAnnotations | default dict) -}}
labels:
  app.kubernetes.io/component: {{ .component }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
