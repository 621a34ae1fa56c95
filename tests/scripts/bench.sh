#!/usr/bin/env bash
# make bench: side-by-side timings, as ratios, of Sigil and the tools its
# users already run, on this machine, against a registry on loopback.
#   warm start: sigil run --rm IMG /bin/true  vs  runc run (prepared bundle)  vs  podman run --rm
#   cold fetch: sigil fetch of a ~200 MB image  vs  skopeo copy  vs  podman pull
# Results go to stdout and bin/bench-results.md. Needs root and hyperfine.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIGIL=${SIGIL:-$PWD/bin/sigil}
RUNS=${RUNS:-20}
BIG_MIB=${BIG_MIB:-200}
work=$(mktemp -d /tmp/sigil-bench.XXXXXX)
reg_pid=""
cleanup() {
	set +e
	[ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	umount "$work"/*/overlay 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/testregistry" ./tests/testregistry
"$work/testregistry" -big "$BIG_MIB" >"$work/addr" 2>"$work/registry.log" &
reg_pid=$!
for _ in $(seq 600); do [ -s "$work/addr" ] && break; sleep 0.1; done
host=$(cat "$work/addr")
img="$host/demo/busybox:latest"
big="$host/demo/big:latest"

echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/policy.json"
g=(--root "$work/root" --state "$work/state" --policy "$work/policy.json")
export CONTAINERS_CONF="$work/containers.conf"
cp /work/shared/peers/podman-containers.conf "$CONTAINERS_CONF" 2>/dev/null || cat >"$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
pod=(--root "$work/podman/root" --runroot "$work/podman/run")

# Warm start: every tool has the image already.
"$SIGIL" "${g[@]}" fetch -q "$img" >/dev/null
podman "${pod[@]}" pull -q --tls-verify=false "$img" >/dev/null
skopeo copy -q --src-tls-verify=false "docker://$img" "oci:$work/oci:bb"
umoci unpack --image "$work/oci:bb" "$work/bundle" >/dev/null
# The runc bundle gets the very spec sigil generates (capabilities, seccomp,
# masked paths, rlimits), with new namespaces instead of the pod's, so the
# two do the same work.
id=$("$SIGIL" "${g[@]}" run -d "$img" sleep 60)
cp "$work/state/containers/$id/config.json" "$work/sigil-config.json"
"$SIGIL" "${g[@]}" rm -f "$id" >/dev/null
python3 - "$work/sigil-config.json" "$work/bundle/config.json" <<'PY'
import json,sys
c=json.load(open(sys.argv[1]))
c["root"]={"path":"rootfs"}
c["process"]["args"]=["/bin/true"]
c["linux"]["namespaces"]=[{"type":n["type"]} for n in c["linux"]["namespaces"]]
c["linux"]["cgroupsPath"]="/bench/runc"
json.dump(c,open(sys.argv[2],"w"))
PY

hyperfine --warmup 3 --runs "$RUNS" --export-json "$work/warm.json" \
	-n sigil "$SIGIL ${g[*]} run --rm $img /bin/true" \
	-n runc "runc --root $work/runc run -b $work/bundle bench-\$RANDOM" \
	-n podman "podman ${pod[*]} run --rm --net none $img /bin/true"

# Cold fetch: a fresh store each run.
hyperfine --runs 5 --export-json "$work/cold.json" \
	--prepare "rm -rf $work/cold-sigil $work/cold-oci; podman ${pod[*]} rmi -f $big >/dev/null 2>&1 || true" \
	-n sigil "$SIGIL --root $work/cold-sigil --state $work/state --policy $work/policy.json fetch -q $big" \
	-n skopeo "skopeo copy -q --src-tls-verify=false docker://$big oci:$work/cold-oci:big" \
	-n podman "podman ${pod[*]} pull -q --tls-verify=false $big"

python3 - "$work/warm.json" "$work/cold.json" <<'PY' | tee bin/bench-results.md
import json,sys
def load(p):
    return {r["command"]: r for r in json.load(open(p))["results"]}
for title, p in [("Warm start (`run --rm IMG /bin/true`, image present)", sys.argv[1]), ("Cold fetch of a ~200 MB, 9-layer image from a loopback registry", sys.argv[2])]:
    res = load(p)
    base, basemed = res["sigil"]["mean"], res["sigil"]["median"]
    print(f"\n### {title}\n")
    print("| tool | mean | stddev | median | sigil / tool (means) | sigil / tool (medians) |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        print(f"| {name} | {r['mean']*1000:.1f} ms | {r['stddev']*1000:.1f} ms | {r['median']*1000:.1f} ms | {base/r['mean']:.2f}x | {basemed/r['median']:.2f}x |")
PY
