"""The files of a new ArgoCD deployment repository (`berth new deployment DIR`).

Layout (the epics-containers shape): `apps.yaml` is the root Application (apply it once with
kubectl); it points at `apps/`, a chart whose one template makes an Application per entry of
`apps/values.yaml` `services:` — path `services/<name>` of the services repository, at the
entry's `targetRevision`, with `global.enabled` passed so that the ioc-instance chart runs 1 or 0
replicas.
"""

from __future__ import annotations

README = """\
# {name}: ArgoCD deployment of IOC instances and services

`apps/values.yaml` says which version (`targetRevision`: a tag of the services repository) of each
service runs and whether it is `enabled`. ArgoCD makes one Application per service from the chart
in `apps/`. Change it with berth, which edits the file in place, commits and pushes:

    berth deploy -b argocd -r . NAME VERSION
    berth stop -b argocd -r . NAME
    berth ps -b argocd -r .

Install once in the cluster (after setting the repository URLs and namespace below):

    kubectl apply -n {name} -f apps.yaml
"""

ROOT_APP = """\
# The root Application: ArgoCD renders apps/ from this repository and keeps the result in sync.
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: {name}
  finalizers:
    - resources-finalizer.argocd.argoproj.io
spec:
  project: {name}
  destination:
    server: https://kubernetes.default.svc
    namespace: {name}
  source:
    repoURL: REPLACE_WITH_THIS_DEPLOYMENT_REPOSITORY_URL
    targetRevision: main
    path: apps
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
"""

CHART = """\
apiVersion: v2
name: apps
description: One ArgoCD Application per service listed in values.yaml
type: application
version: 1.0.0
"""

VALUES = """\
# Which services run, and at which version. Edited by `berth deploy|start|stop|delete -b argocd`
# (comments and order are kept); commit and push to apply.

# the ArgoCD project and where the services run
project: {name}
destination:
  server: https://kubernetes.default.svc
  namespace: {name}

# the services repository: each service is its folder services/<name>
source:
  repoURL: REPLACE_WITH_SERVICES_REPOSITORY_URL
  targetRevision: main

services:
  # Each entry is of the form:
  #   <service name>:
  #     targetRevision: a tag of the services repository (default: source.targetRevision)
  #     enabled: false to stop it (0 replicas) without removing it
  #     removed: true to remove it from the cluster
  #     repoURL: another services repository for this one service
  #     labels: extra labels for its resources
"""

APPLICATION_TEMPLATE = """\
{{- range $name, $service := .Values.services }}
{{- $service = $service | default dict }}
{{- if not $service.removed }}
{{- $enabled := true }}
{{- if hasKey $service "enabled" }}{{ $enabled = eq (toString $service.enabled) "true" }}{{ end }}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    ec_service: "true"
    enabled: {{ $enabled | quote }}
  finalizers:
    - resources-finalizer.argocd.argoproj.io
spec:
  project: {{ $.Values.project }}
  destination:
    {{- toYaml $.Values.destination | nindent 4 }}
  source:
    repoURL: {{ $service.repoURL | default $.Values.source.repoURL }}
    targetRevision: {{ $service.targetRevision | default $.Values.source.targetRevision | quote }}
    path: services/{{ $name }}
    helm:
      version: v3
      valueFiles:
        - ../values.yaml
        - values.yaml
      ignoreMissingValueFiles: true
      valuesObject:
        global:
          enabled: {{ $enabled }}
          {{- with $service.labels }}
          labels:
            {{- toYaml . | nindent 12 }}
          {{- end }}
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
{{- end }}
{{- end }}
"""
