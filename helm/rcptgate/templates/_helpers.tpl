{{/* Chart name, overridable. */}}
{{- define "rcptgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full object name: release name, plus the chart name unless the release name contains it. */}}
{{- define "rcptgate.fullname" -}}
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

{{- define "rcptgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "rcptgate.labels" -}}
helm.sh/chart: {{ include "rcptgate.chart" . }}
{{ include "rcptgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select this release's pods (immutable in a Deployment: keep them few). */}}
{{- define "rcptgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rcptgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Label a client pod carries to pass the NetworkPolicy (the helm test pod has it). A label key's
name holds at most 63 characters: the full name is cut to 56 for it, or the API server refuses
the NetworkPolicy (and so the release) for release names over 47 characters.
*/}}
{{- define "rcptgate.clientLabel" -}}
{{ include "rcptgate.fullname" . | trunc 56 | trimSuffix "-" }}-client: "true"
{{- end }}

{{- define "rcptgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rcptgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: repository:tag (tag defaults to appVersion), or repository@digest. */}}
{{- define "rcptgate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Enabled listeners as a dict name → container port. http (the probes use it) and metrics (what
Prometheus scrapes) are always on; the rcptgate config, the container ports, the Service and
the NetworkPolicy are all built from this one dict.
*/}}
{{- define "rcptgate.listeners" -}}
{{- $out := dict "http" .Values.containerPorts.http "metrics" .Values.containerPorts.metrics }}
{{- range $name := list "socketmap" "policy" "milter" }}
{{- if (index $.Values.listeners $name).enabled }}
{{- $_ := set $out $name (index $.Values.containerPorts $name) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Replicas that run at once at least (decides whether a PodDisruptionBudget makes sense). */}}
{{- define "rcptgate.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* Deployment, or a StatefulSet when each replica keeps its data on a claim of its own. */}}
{{- define "rcptgate.workloadKind" -}}
{{- if .Values.persistence.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/* Paths inside the pod. */}}
{{- define "rcptgate.configDir" -}}/etc/rcptgate/config{{- end }}
{{- define "rcptgate.secretDir" -}}/etc/rcptgate/secrets{{- end }}
{{- define "rcptgate.dataDir" -}}/var/lib/rcptgate{{- end }}

{{- define "rcptgate.secretName" -}}
{{- default (include "rcptgate.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Whether the LDAP bind password file is mounted: a bind DN needs a password. */}}
{{- define "rcptgate.needsBindPassword" -}}
{{- if and (eq .Values.config.directory.kind "ldap") .Values.config.directory.ldap.bindDN }}true{{ end }}
{{- end }}

{{/* Whether any secret file is mounted. */}}
{{- define "rcptgate.needsSecrets" -}}
{{- if or (include "rcptgate.needsBindPassword" .) .Values.admin.enabled .Values.lookupToken.enabled }}true{{ end }}
{{- end }}

{{/* Whether the chart creates the Secret. */}}
{{- define "rcptgate.createSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (include "rcptgate.needsSecrets" .) }}true{{ end }}
{{- end }}

{{/*
The rcptgate config file: .Values.config plus what the chart owns. Empty strings stand for
rcptgate's null (unset) and are dropped, so rcptgate's own default applies.
*/}}
{{- define "rcptgate.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $listeners := include "rcptgate.listeners" . | fromYaml }}
{{- $listen := dict }}
{{- range $name := list "http" "socketmap" "policy" "milter" "metrics" }}
{{- if hasKey $listeners $name }}
{{- $_ := set $listen $name (printf "%s:%v" $.Values.listenHost (index $listeners $name)) }}
{{- else }}
{{- $_ := set $listen $name nil }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "listen" $listen }}
{{- $dir := $cfg.directory | default dict }}
{{- $ldif := $dir.ldif | default dict }}
{{- if not $ldif.path }}{{ $_ := unset $ldif "path" }}{{ end }}
{{- $ldap := $dir.ldap | default dict }}
{{- range $key := list "bindDN" "filter" }}
{{- if not (index $ldap $key) }}{{ $_ := unset $ldap $key }}{{ end }}
{{- end }}
{{- $tls := $ldap.tls | default dict }}
{{- if not $tls.caFile }}{{ $_ := unset $tls "caFile" }}{{ end }}
{{- if include "rcptgate.needsBindPassword" . }}
{{- $_ := set $ldap "bindPasswordFile" (printf "%s/%s" (include "rcptgate.secretDir" .) .Values.secrets.ldapBindPasswordKey) }}
{{- end }}
{{- if .Values.admin.enabled }}
{{- $_ := set $cfg "admin" (dict "tokenFile" (printf "%s/%s" (include "rcptgate.secretDir" .) .Values.secrets.adminTokenKey)) }}
{{- end }}
{{- if .Values.lookupToken.enabled }}
{{- $http := $cfg.http | default dict }}
{{- $_ := set $http "lookupTokenFile" (printf "%s/%s" (include "rcptgate.secretDir" .) .Values.secrets.lookupTokenKey) }}
{{- $_ := set $cfg "http" $http }}
{{- end }}
{{- if ($cfg.sync | default dict).enabled }}
{{- $_ := set $cfg.sync "snapshotPath" (printf "%s/snapshot.json" (include "rcptgate.dataDir" .)) }}
{{- end }}
{{- $overrides := dict }}
{{- if .Values.overrides.allow }}{{ $_ := set $overrides "allowFile" (printf "%s/allow.txt" (include "rcptgate.configDir" .)) }}{{ end }}
{{- if .Values.overrides.deny }}{{ $_ := set $overrides "denyFile" (printf "%s/deny.txt" (include "rcptgate.configDir" .)) }}{{ end }}
{{- if $overrides }}{{ $_ := set $cfg "overrides" $overrides }}{{ end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Mistakes helm can catch before anything reaches the cluster. */}}
{{- define "rcptgate.validate" -}}
{{- if and (include "rcptgate.needsBindPassword" .) (not .Values.secrets.existingSecret) (not .Values.secrets.ldapBindPassword) }}
{{- fail "config.directory.ldap.bindDN is set: set secrets.ldapBindPassword or secrets.existingSecret" }}
{{- end }}
{{- if and .Values.admin.enabled (not .Values.secrets.existingSecret) (not .Values.secrets.adminToken) }}
{{- fail "admin.enabled is true: set secrets.adminToken or secrets.existingSecret" }}
{{- end }}
{{- if and .Values.lookupToken.enabled (not .Values.secrets.existingSecret) (not .Values.secrets.lookupToken) }}
{{- fail "lookupToken.enabled is true: set secrets.lookupToken or secrets.existingSecret" }}
{{- end }}
{{- include "rcptgate.validateRuntime" . }}
{{- if eq .Values.config.directory.kind "ldap" }}
{{- if not .Values.config.directory.ldap.urls }}
{{- fail "config.directory.kind is ldap: list the servers in config.directory.ldap.urls" }}
{{- end }}
{{- if not .Values.config.domains }}
{{- fail "config.directory.kind is ldap: list the domains to answer for in config.domains" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A duration ("500ms", "3s", "5m", "1h", "1d"; the schema checks the form) in milliseconds. */}}
{{- define "rcptgate.durationMs" -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 }}
{{- $re := "^([0-9]+(?:\\.[0-9]+)?)(ms|s|m|h|d)$" }}
{{- mulf (float64 (regexReplaceAll $re . "${1}")) (get $units (regexReplaceAll $re . "${2}")) }}
{{- end }}

{{/*
Values the schema accepts but the pod could not run with: caught at helm install rather than
as a crash loop or a pod killed mid-drain.
*/}}
{{- define "rcptgate.validateRuntime" -}}
{{- $cfg := .Values.config }}
{{- /* Timers: rcptgate refuses more than 24d (a Node.js timer fires at once beyond ~24.8 days), 0 where it breaks the service, and under 1s for work that runs again as soon as it is due. */}}
{{- $maxTimer := mulf 24 86400000 }}
{{- range $t := list (list "directory.ldap.timeout" true false) (list "sync.interval" true true) (list "sync.incrementalInterval" true true) (list "cache.persistInterval" true true) (list "server.idleTimeout" false false) (list "server.requestTimeout" false false) (list "server.drainTimeout" false false) (list "policy.harvest.delayStep" false false) (list "policy.harvest.maxDelay" false false) (list "directory.ldap.failbackAfter" false false) }}
{{- $path := index $t 0 }}
{{- $node := $cfg }}
{{- range $k := splitList "." $path }}{{ $node = (kindIs "map" $node) | ternary (get $node $k) "" }}{{ end }}
{{- if $node }}
{{- $ms := include "rcptgate.durationMs" $node | float64 }}
{{- if gt $ms $maxTimer }}{{ fail (printf "config.%s (%s) is longer than 24d: rcptgate refuses it (a longer timer would fire at once)" $path $node) }}{{ end }}
{{- if and (index $t 1) (eq $ms 0.0) }}{{ fail (printf "config.%s must be more than 0" $path) }}{{ end }}
{{- if and (index $t 2) (lt $ms 1000.0) }}{{ fail (printf "config.%s (%s) must be at least 1s" $path $node) }}{{ end }}
{{- end }}
{{- end }}
{{- /* Failback: each attempt opens a connection, so rcptgate takes 0s (never) or at least 1s. */}}
{{- $failback := include "rcptgate.durationMs" (dig "directory" "ldap" "failbackAfter" "1m" $cfg) | float64 }}
{{- if and (gt $failback 0.0) (lt $failback 1000.0) }}{{ fail (printf "config.directory.ldap.failbackAfter (%s) must be 0s (never) or at least 1s" (dig "directory" "ldap" "failbackAfter" "1m" $cfg)) }}{{ end }}
{{- /* SIGTERM drain: Kubernetes kills the pod after the grace period, preStop sleep included. */}}
{{- $drain := include "rcptgate.durationMs" (dig "server" "drainTimeout" "10s" $cfg) | float64 }}
{{- $needed := addf $drain (mulf .Values.preStopSleepSeconds 1000) }}
{{- if ge $needed (mulf .Values.terminationGracePeriodSeconds 1000) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds (%v) plus config.server.drainTimeout (%s), or pods are killed mid-drain" .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds (dig "server" "drainTimeout" "10s" $cfg)) }}
{{- end }}
{{- /* Kubelet probes and Service traffic reach the pod IP: a loopback-only pod is restarted for ever. */}}
{{- if regexMatch "^(localhost|127\\.[0-9.]+|\\[::1\\])$" .Values.listenHost }}
{{- fail (printf "listenHost %s is loopback: the probes and the Service reach the pod IP, so the pod would never be ready and be restarted in a loop; use \"0.0.0.0\" or \"[::]\" (the NetworkPolicy restricts clients)" .Values.listenHost) }}
{{- end }}
{{- /* Two listeners on one port: rcptgate would exit with EADDRINUSE. */}}
{{- $listeners := include "rcptgate.listeners" . | fromYaml }}
{{- $seen := dict }}
{{- range $name := keys $listeners | sortAlpha }}
{{- $port := toString (index $listeners $name) }}
{{- if hasKey $seen $port }}{{ fail (printf "containerPorts.%s and containerPorts.%s are both %s: each enabled listener needs its own port" (get $seen $port) $name $port) }}{{ end }}
{{- $_ := set $seen $port $name }}
{{- end }}
{{- /* The root file system is read-only: the answer file must lie on a mounted volume. */}}
{{- $persist := dig "cache" "persistPath" "" $cfg }}
{{- if hasSuffix "/" $persist }}
{{- fail (printf "config.cache.persistPath (%s) names a directory: give the answer file a name, e.g. %s/answers.bin" $persist (include "rcptgate.dataDir" .)) }}
{{- end }}
{{- if hasPrefix "/tmp/" $persist }}
{{- /* /tmp is a 16Mi memory-backed volume: about 80 bytes per answer, twice during a save, would exceed it and get the pod evicted. */}}
{{- fail (printf "config.cache.persistPath (%s) is on /tmp, a 16Mi memory-backed scratch volume: the answer file (about 80 bytes per cached answer, twice while a save runs) would outgrow it and get the pod evicted; put it under %s/" $persist (include "rcptgate.dataDir" .)) }}
{{- end }}
{{- if and $persist (dig "sync" "enabled" false $cfg) (eq $persist (printf "%s/snapshot.json" (include "rcptgate.dataDir" .))) }}
{{- fail (printf "config.cache.persistPath is the snapshot file (%s): give the answer file a name of its own, e.g. %s/answers.bin" $persist (include "rcptgate.dataDir" .)) }}
{{- end }}
{{- if $persist }}
{{- $writable := list (printf "%s/" (include "rcptgate.dataDir" .)) }}
{{- range .Values.extraVolumeMounts }}{{ if not .readOnly }}{{ $writable = append $writable (printf "%s/" (trimSuffix "/" .mountPath)) }}{{ end }}{{ end }}
{{- $ok := false }}
{{- range $writable }}{{ if hasPrefix . $persist }}{{ $ok = true }}{{ end }}{{ end }}
{{- if not $ok }}
{{- fail (printf "config.cache.persistPath (%s) is on the read-only root file system: put it under %s/ (the data volume) or a writable extraVolumeMounts path" $persist (include "rcptgate.dataDir" .)) }}
{{- end }}
{{- end }}
{{- if dig "sync" "enabled" false $cfg }}
{{- $interval := dig "sync" "interval" "15m" $cfg }}
{{- $maxAge := dig "sync" "maxAge" "24h" $cfg }}
{{- if le (include "rcptgate.durationMs" $maxAge | float64) (include "rcptgate.durationMs" $interval | float64) }}
{{- fail (printf "config.sync.maxAge (%s) must be longer than config.sync.interval (%s): the snapshot would expire before the next full sync" $maxAge $interval) }}
{{- end }}
{{- end }}
{{- if and (dig "sync" "enabled" false $cfg) (ne $cfg.directory.kind "ldap") }}
{{- fail "config.sync.enabled needs config.directory.kind ldap (a snapshot is a copy of an LDAP directory)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%v) is above autoscaling.maxReplicas (%v)" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) }}
{{- end }}
{{- /* Environment variables override the config file: one for a key the chart owns would part the pod from its Service, probes or mounts. */}}
{{- range .Values.extraEnv }}
{{- if regexMatch "^RCPTGATE_(CONFIG|LISTEN_.*|SYNC_SNAPSHOT_PATH|DIRECTORY_LDAP_BIND_PASSWORD_FILE|ADMIN_TOKEN_FILE|HTTP_LOOKUP_TOKEN_FILE|OVERRIDES_.*)$" (.name | default "") }}
{{- fail (printf "extraEnv %s sets what the chart owns (listen addresses, secret and snapshot paths, override files): use containerPorts, listeners, listenHost, secrets, overrides or config.sync instead" .name) }}
{{- end }}
{{- end }}
{{- /* A V8 heap allowed to grow past the memory limit: the kernel kills the pod (SIGKILL: no drain, no answer file saved) before V8 collects. */}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) | toString }}
{{- $qty := regexFind "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|K|M|G|T)?$" $limit }}
{{- range .Values.extraEnv }}
{{- $heap := regexFind "--max[-_]old[-_]space[-_]size[= ]?[0-9]+" (toString (.value | default "")) | regexFind "[0-9]+$" }}
{{- if and (eq (.name | default "") "NODE_OPTIONS") $heap $qty }}
{{- $units := dict "" 1.0 "k" 1000.0 "K" 1000.0 "Ki" 1024.0 "M" 1e6 "Mi" 1048576.0 "G" 1e9 "Gi" 1073741824.0 "T" 1e12 "Ti" 1099511627776.0 }}
{{- $limitMiB := divf (mulf (float64 (regexFind "^[0-9.]+" $qty)) (get $units (regexReplaceAll "^[0-9.]+" $qty ""))) 1048576 }}
{{- if ge (float64 $heap) $limitMiB }}
{{- fail (printf "extraEnv NODE_OPTIONS lets the V8 heap grow to %s MiB, not below resources.limits.memory (%s): the pod would be OOM-killed (no drain, no answer file saved) rather than collect garbage; set --max-old-space-size to about three quarters of the limit (%d) or raise the limit" $heap $limit (int (mulf $limitMiB 0.75))) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* The API server refuses a pod with two volumes of one name or two mounts on one path; the release would render, then fail to apply. */}}
{{- $owned := dict "config" (include "rcptgate.configDir" .) "secrets" (include "rcptgate.secretDir" .) "data" (include "rcptgate.dataDir" .) "tmp" "/tmp" }}
{{- range .Values.extraVolumes }}
{{- if hasKey $owned (.name | default "") }}
{{- fail (printf "extraVolumes: the name %s is the chart's own volume (config, secrets, data, tmp): name yours differently" .name) }}
{{- end }}
{{- end }}
{{- range .Values.extraVolumeMounts }}
{{- $path := trimSuffix "/" (.mountPath | default "") }}
{{- range $name, $owner := $owned }}
{{- if eq $path $owner }}
{{- fail (printf "extraVolumeMounts: %s is where the chart mounts its %s volume (the snapshot and Node's scratch space live on volumes the chart owns): mount yours elsewhere" $path $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Kubernetes labels a StatefulSet's pods controller-revision-hash: <name>-<hash of up to 10>, a label value of at most 63 characters: a longer name installs, and no pod is ever created. */}}
{{- if and .Values.persistence.enabled (gt (len (include "rcptgate.fullname" .)) 52) }}
{{- fail (printf "persistence.enabled renders a StatefulSet, whose name must be 52 characters or fewer (Kubernetes labels its pods with the name and a revision hash, at most 63 characters): %s has %d; set fullnameOverride to a shorter name" (include "rcptgate.fullname" .) (len (include "rcptgate.fullname" .))) }}
{{- end }}
{{- /* A PodDisruptionBudget that no eviction can satisfy blocks every node drain. */}}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- $replicas := int (include "rcptgate.minReplicas" .) }}
{{- if and (gt $replicas 1) (not (kindIs "string" $min)) (ge (int $min) $replicas) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) must be below the replica count (%d), or no pod can ever be evicted and node drains hang" $min $replicas) }}
{{- end }}
{{- /* Kubernetes rounds a percentage up: 60% of 2 pods keeps both. */}}
{{- if and (gt $replicas 1) (kindIs "string" $min) (hasSuffix "%" $min) }}
{{- $kept := ceil (divf (mulf (float64 (trimSuffix "%" $min)) $replicas) 100) | int }}
{{- if ge $kept $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable (%s) keeps %d of %d pods (Kubernetes rounds up): no pod can ever be evicted and node drains hang; use a lower percentage or a number below %d" $min $kept $replicas $replicas) }}
{{- end }}
{{- end }}
{{- end }}
