{{/*
The services, their gRPC ports and who calls them (trading_core.peers: order-management and
position-management call execution-router; order-management calls position-management).
Clients (strategy authors) reach order-management and position-management. Sharded services
run once per shard (`shards`); market-data once, shared by every shard.
*/}}
{{- define "trading-platform.services" -}}
order-management: {port: 50051, callers: [], clients: true, sharded: true}
execution-router: {port: 50052, callers: [order-management, position-management], clients: false, sharded: true}
position-management: {port: 50053, callers: [order-management], clients: true, sharded: true}
market-data: {port: 50054, callers: [], clients: false, sharded: false}
{{- end -}}

{{/* The config files in trading-config, as config/kustomization.yaml lists them. */}}
{{- define "trading-platform.configFiles" -}}
[base.yaml, dev.yaml, dev-k8s.yaml, dev-k8s-duckdb.yaml, prod.yaml, prod-k8s.yaml, prod-k8s-duckdb.yaml]
{{- end -}}

{{/*
A generated ConfigMap's name as Kustomize makes it: the name, a dash, and the first ten hex
digits of the SHA-256 of its JSON (data, kind and, as Kustomize 5 hashes it, an empty name) with
0, 1, 3, a, e spelled g, h, k, m, t. A change of its data renames it and so rolls the pods.
Argument: (list name data).
*/}}
{{- define "trading-platform.hashedName" -}}
{{- $name := index . 0 -}}
{{- $hash := dict "data" (index . 1) "kind" "ConfigMap" "name" "" | toJson | sha256sum | trunc 10 -}}
{{- printf "%s-%s" $name ($hash | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t") -}}
{{- end -}}

{{/* The data of the two ConfigMaps, as JSON (a YAML round trip would drop a final newline). */}}
{{- define "trading-platform.configData" -}}
{{- $data := dict -}}
{{- range include "trading-platform.configFiles" . | fromYamlArray -}}
{{- $_ := set $data . ($.Files.Get (printf "config/%s" .)) -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{- define "trading-platform.environmentData" -}}
{{- $data := dict "TRADING_ENV" .Values.environment "GCP_PROJECT" .Values.gcp.project "TRADING_CONFIG_VARIANT" (ternary "-k8s" "-k8s-duckdb" .Values.bigquery.enabled) -}}
{{- if .Values.tracing.enabled -}}
{{- $_ := set $data "OTEL_TRACES_EXPORTER" "otlp" -}}
{{- $_ := set $data "OTEL_EXPORTER_OTLP_PROTOCOL" "grpc" -}}
{{- $_ := set $data "OTEL_EXPORTER_OTLP_ENDPOINT" .Values.tracing.endpoint -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{- define "trading-platform.configName" -}}
{{- include "trading-platform.hashedName" (list "trading-config" (include "trading-platform.configData" . | fromJson)) -}}
{{- end -}}

{{- define "trading-platform.environmentName" -}}
{{- include "trading-platform.hashedName" (list "trading-environment" (include "trading-platform.environmentData" . | fromJson)) -}}
{{- end -}}

{{/*
The provider's `secrets` parameter: one resourceName and path per secret, as the overlays write
it. Argument: (list project secrets); empty: "[]".
*/}}
{{- define "trading-platform.secretsParameter" -}}
{{- $project := index . 0 -}}
{{- range index . 1 -}}
- resourceName: projects/{{ $project }}/secrets/{{ .secret }}/versions/{{ .version }}
{{ printf "  path: %s" .variable }}
{{ end -}}
{{- if not (index . 1) }}[]{{ end -}}
{{- end -}}

{{/* The synced Secret's keys, one per variable. Argument: the secrets. */}}
{{- define "trading-platform.secretObjectData" -}}
{{- range . }}
- objectName: {{ .variable }}
  key: {{ .variable }}
{{- else }}
[]
{{- end }}
{{- end -}}
