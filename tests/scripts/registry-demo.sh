#!/usr/bin/env bash
# The registry demo: `sigil registry serve` on loopback with the embedded
# default login (an htpasswd file), trust enforcement on demo/**, the audit
# log. Copies the sample images in, signs one, and shows a signed image
# pulled, an unsigned one refused with its reason, the referrers API and the
# audit lines. Needs no root. Uses crane (make deps) for the copies.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIGIL=${SIGIL:-$PWD/bin/sigil}
CRANE=${CRANE:-$(command -v crane || echo "$(go env GOPATH)/bin/crane")}
work=$(mktemp -d /tmp/sigil-registry-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export DOCKER_CONFIG=$work/docker REGISTRY_AUTH_FILE=$work/docker/config.json SIGIL_PASSWORD=demo
mkdir -p "$DOCKER_CONFIG"

[ -x "$SIGIL" ] || go build -tags seccomp -o "$SIGIL" ./cmd/sigil
[ -x "$CRANE" ] || { echo "crane is missing: make deps" >&2; exit 1; }

step "Sample images on a scratch registry (built from /bin/busybox)"
go build -o "$work/testregistry" ./tests/testregistry
"$work/testregistry" >"$work/samples-addr" 2>"$work/samples.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/samples-addr" ] && break; sleep 0.1; done
samples=$(cat "$work/samples-addr")

host=127.0.0.1:$(free_port)
step "Configure sigil registry on $host: htpasswd login, enforcement on demo/**"
echo admin-password | run "$SIGIL" registry htpasswd --password-stdin "$work/htpasswd" admin
run "$SIGIL" key generate "$work/demo"
cat >"$work/policy.json" <<JSON
{"default": [{"type": "insecureAcceptAnything"}],
 "transports": {"docker": {"$host/demo": [{"type": "sigstoreSigned", "keyPath": "$work/demo.pub", "signedIdentity": {"type": "matchRepository"}}]}}}
JSON
cat >"$work/registry.yaml" <<YAML
http: {addr: $host}
storage: {filesystem: {rootdirectory: $work/storage}}
auth: {htpasswd: {path: htpasswd}}
access:
  - {repositories: ["**"], users: [admin], actions: ["*"]}
  - {repositories: ["public/**"], anonymous: true, actions: [pull]}
signatures: {policy: policy.json, enforce: ["demo/**"]}
audit: {path: audit.jsonl}
YAML
cat "$work/registry.yaml"
"$SIGIL" registry serve --config "$work/registry.yaml" 2>"$work/registry.log" &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://$host/healthz" >/dev/null && break; sleep 0.1; done
run curl -s "http://$host/healthz"

step "Log in and copy the sample images in (crane; docker, podman and skopeo work the same)"
run "$CRANE" auth login "$host" -u admin -p admin-password
for img in busybox layered; do run "$CRANE" copy --insecure "$samples/demo/$img" "$host/demo/$img"; done

step "Sign demo/busybox (cosign's tag scheme: the sha256-<digest>.sig tag)"
run "$SIGIL" --insecure-registry "$host" sign --key "$work/demo.key" "$host/demo/busybox"

step "Pull the signed image: the registry judged it by the policy and let it through"
run "$CRANE" manifest --insecure "$host/demo/busybox" | head -c 200; echo

step "Pull the unsigned image: 403, with the reason"
set +e
run "$CRANE" manifest --insecure "$host/demo/layered"
set -e

step "Sign it as an OCI 1.1 referrer; the referrers API lists the signature; now it pulls"
run "$SIGIL" --insecure-registry "$host" sign --referrer --key "$work/demo.key" "$host/demo/layered"
digest=$("$CRANE" digest --insecure "$host/demo/layered")
token=$(curl -s -u admin:admin-password "http://$host/auth/token?service=sigil-registry&scope=repository:demo/layered:pull" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
printf '$ curl -s -H "Authorization: Bearer $token" http://%s/v2/demo/layered/referrers/%s\n' "$host" "$digest"
curl -s -H "Authorization: Bearer $token" "http://$host/v2/demo/layered/referrers/$digest"; echo
run "$CRANE" manifest --insecure "$host/demo/layered" | head -c 200; echo

step "The audit log"
run cat "$work/audit.jsonl"
