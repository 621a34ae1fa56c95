#!/usr/bin/env bash
# Signing benchmarks, side by side, against a registry on loopback:
#   verify:   sigil verify --key  vs  sigil verify (policy)  vs  cosign verify --key
#   warm run: sigil run --rm IMG true with a cached sigstoreSigned verdict
#             vs the same with a policy that checks nothing
# The image is signed by the cosign CLI (tag scheme). cosign is sandboxed
# as /work/shared/peers/README.md says (closed proxy, own TUF_ROOT).
# Results go to stdout and bin/bench-signing.md. Needs root, hyperfine,
# cosign (make deps). Usage: tests/scripts/bench-signing.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SIGIL=${SIGIL:-$PWD/bin/sigil}
RUNS=${1:-${RUNS:-30}}
COSIGN=${COSIGN:-$(command -v cosign || echo "$(go env GOPATH)/bin/cosign")}
work=$(mktemp -d /tmp/sigil-bench-signing.XXXXXX)
reg_pid=""
g=()
cleanup() {
	set +e
	for id in $("$SIGIL" "${g[@]}" ps -a -q 2>/dev/null); do "$SIGIL" "${g[@]}" rm -f "$id" >/dev/null 2>&1; done
	[ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/testregistry" ./tests/testregistry
"$work/testregistry" >"$work/addr" 2>"$work/registry.log" &
reg_pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
host=$(cat "$work/addr")
img="$host/demo/busybox:latest"

export SIGIL_PASSWORD=bench COSIGN_PASSWORD=bench
sandbox=(env HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost TUF_ROOT="$work/tuf" HOME="$work")
g=(--root "$work/root" --state "$work/state" --policy "$work/policy.json")
(cd "$work" && "${sandbox[@]}" "$COSIGN" generate-key-pair >/dev/null 2>&1)
digest=$("$SIGIL" --insecure-policy --root "$work/root" verify -o json "$img" | sed -n 's/.*"digest": "\(sha256:[0-9a-f]*\)".*/\1/p')
"${sandbox[@]}" "$COSIGN" sign --yes --key "$work/cosign.key" --tlog-upload=false --allow-http-registry "$host/demo/busybox@$digest" >/dev/null 2>&1
"$SIGIL" "${g[@]}" trust add --scope "$host/demo" --key "$work/cosign.pub" 2>/dev/null
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/accept.json"

echo "sigil $("$SIGIL" --version 2>/dev/null || echo dev), $("$COSIGN" version 2>/dev/null | sed -n 's/^GitVersion: *//p') on $(nproc) cores; image $img ($digest)"
hyperfine -N -w 3 -r "$RUNS" --export-markdown "$work/verify.md" \
	-n "sigil verify --key" "$SIGIL ${g[*]} verify --key $work/cosign.pub $img" \
	-n "sigil verify (policy)" "$SIGIL ${g[*]} verify $img" \
	-n "cosign verify --key" "${sandbox[*]} $COSIGN verify --key $work/cosign.pub --insecure-ignore-tlog --allow-http-registry $img"

# Warm run: the image is stored and its verdict cached (fetch records it).
"$SIGIL" "${g[@]}" fetch -q "$img" >/dev/null
"$SIGIL" "${g[@]}" run --rm -q "$img" true
hyperfine -N -w 3 -r "$RUNS" --export-markdown "$work/run.md" \
	-n "warm run, policy accepts anything" "$SIGIL --root $work/root --state $work/state --policy $work/accept.json run --rm -q $img true" \
	-n "warm run, sigstoreSigned, cached verdict" "$SIGIL ${g[*]} run --rm -q $img true"

mkdir -p bin
cat "$work/verify.md" "$work/run.md" | tee bin/bench-signing.md
