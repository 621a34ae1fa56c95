#!/usr/bin/env bash
# make demo: Sigil end to end on embedded defaults. Starts a registry on
# loopback holding images built from busybox-static, makes a key, signs
# one image and trusts the key, verifies, fetches and runs the signed image,
# shows an unsigned and a rejected image refused, runs a detached
# container, and cleans up after itself. Needs root (real containers).
set -euo pipefail
cd "$(dirname "$0")/../.."

SIGIL=${SIGIL:-$PWD/bin/sigil}
work=$(mktemp -d /tmp/sigil-demo.XXXXXX)
reg_pid=""
g=()
cleanup() {
	set +u
	set +e
	if [ -x "$SIGIL" ]; then
		for id in $("$SIGIL" "${g[@]}" ps -a -q 2>/dev/null); do "$SIGIL" "${g[@]}" rm -f "$id" >/dev/null 2>&1; done
	fi
	[ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# sigil runs the binary on the demo's own root, state and policy; run shows
# the command first.
sigil() { "$SIGIL" "${g[@]}" "$@"; }
run() { printf '$ %s\n' "$*"; "$@"; }

[ "$(id -u)" = 0 ] || { echo "make demo runs real containers and needs root" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "installing busybox-static"; apt-get install -y -qq busybox-static >/dev/null; }

step "Build a loopback registry with sample images made from /bin/busybox"
go build -o "$work/testregistry" ./tests/testregistry
"$work/testregistry" >"$work/addr" 2>"$work/registry.log" &
reg_pid=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
host=$(cat "$work/addr")
echo "registry at http://$host (demo/busybox, demo/untrusted, demo/layered, demo/multi)"

g=(--root "$work/root" --state "$work/state" --policy "$work/policy.json")
echo "(sigil below is $SIGIL ${g[*]})"

step "Make a signing key (cosign's formats) and sign demo/busybox"
export SIGIL_PASSWORD=demo   # else sigil asks on the terminal
run sigil key generate "$work/demo"
run sigil sign --key "$work/demo.key" "$host/demo/busybox"

step "Write a trust policy: $host/demo must be signed by that key; reject everything else"
cat >"$work/policy.json" <<JSON
{
  "default": [{"type": "reject"}],
  "transports": {"docker": {
    "$host/demo/untrusted": [{"type": "reject"}]
  }}
}
JSON
run sigil trust add --scope "$host/demo" --key "$work/demo.pub"
run sigil trust list

step "Verify without fetching: the digest, the scope that matched, who signed it"
run sigil verify "$host/demo/busybox"

step "Fetch an image: the policy judges the digest before any layer is downloaded"
run sigil fetch "$host/demo/busybox"
run sigil images

step "Run it: a pod with its own namespaces and cgroup; the exit code is the container's"
run sigil run --rm "$host/demo/busybox" sh -c 'echo "hello from $(hostname), PID $$, as $(id -un)"'
set +e
printf '$ sigil run --rm %s sh -c "exit 7"\n' "$host/demo/busybox"
"$SIGIL" "${g[@]}" run --rm "$host/demo/busybox" sh -c 'exit 7'
echo "exit code: $? (the container's)"
set -e

step "An unsigned image is refused with its reason, and no layer is fetched"
set +e
printf '$ sigil fetch %s\n' "$host/demo/layered"
"$SIGIL" "${g[@]}" fetch "$host/demo/layered"
echo "exit code: $?"
printf '$ sigil fetch %s\n' "$host/demo/untrusted"
"$SIGIL" "${g[@]}" fetch "$host/demo/untrusted"
echo "exit code: $?"
set -e

step "Detached: a monitor supervises the container; the CLI exits"
run sigil run -d --name web "$host/demo/busybox" sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done'
sleep 2
run sigil ps
run sigil logs web
run sigil exec web ps
run sigil stop -t 2 web
run sigil ps -a
run sigil rm web

step "Done; cleaning up"
