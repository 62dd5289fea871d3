{{/* The IOC's name: the release name (one release per instance). */}}
{{- define "ioc.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Whether the IOC runs: the service's own `enabled`, else global.enabled, else true. */}}
{{- define "ioc.enabled" -}}
{{- $global := .Values.global | default dict -}}
{{- if hasKey .Values "enabled" -}}
{{- ternary "true" "false" (eq (toString .Values.enabled) "true") -}}
{{- else if hasKey $global "enabled" -}}
{{- ternary "true" "false" (eq (toString $global.enabled) "true") -}}
{{- else -}}
true
{{- end -}}
{{- end -}}

{{- define "ioc.location" -}}
{{- $global := .Values.global | default dict -}}
{{- .Values.location | default $global.location | default "" -}}
{{- end -}}

{{- define "ioc.domain" -}}
{{- $global := .Values.global | default dict -}}
{{- .Values.domain | default $global.domain | default "" -}}
{{- end -}}

{{/* Labels on every object: identity plus what `berth ps` and ArgoCD select on; these win over
     labels from values (global.labels, then labels). */}}
{{- define "ioc.labels" -}}
{{- $global := .Values.global | default dict -}}
{{- $fixed := dict "app" (include "ioc.name" .) "ioc" "true" "location" (include "ioc.location" .) "domain" (include "ioc.domain" .) "enabled" (include "ioc.enabled" .) "app.kubernetes.io/managed-by" .Release.Service "helm.sh/chart" (printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_") -}}
{{- $labels := merge $fixed (.Values.labels | default dict) ($global.labels | default dict) -}}
{{- range $key, $value := $labels }}{{ $_ := set $labels $key (toString $value) }}{{ end -}}
{{- toYaml $labels -}}
{{- end -}}

{{- define "ioc.selector" -}}
app: {{ include "ioc.name" . | quote }}
{{- end -}}

{{/* True when the config folder has at least one file. */}}
{{- define "ioc.hasConfig" -}}
{{- if or .Values.configFiles .Values.configBinaryFiles -}}true{{- end -}}
{{- end -}}

{{/* An exec probe running an executable of the image, unless a full probe object is given. */}}
{{- define "ioc.probe" -}}
{{- $probe := index . 0 -}}
{{- $exe := index . 1 -}}
{{- $defaults := index . 2 -}}
{{- if $probe -}}
{{ toYaml $probe }}
{{- else if $exe -}}
exec:
  command: [{{ $exe | quote }}]
{{ toYaml $defaults }}
{{- end -}}
{{- end -}}


{{/* A side container's securityContext: the IOC's hardened one, each key the container sets
     replacing it (key by key, so `readOnlyRootFilesystem: false` counts, which merge loses). */}}
{{- define "ioc.hardened" -}}
{{- $context := deepCopy (index . 0) -}}
{{- range $key, $value := ((index . 1).securityContext | default dict) }}{{ $_ := set $context $key $value }}{{ end -}}
{{- toYaml $context -}}
{{- end -}}
