#!/usr/bin/env bash
# Regenerates Documentation/cli.md from the binary's own help, so the
# reference never drifts from the flags: tests/scripts/gen-cli-doc.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SIGIL=${SIGIL:-bin/sigil}
cmds=(fetch images "image rm" "image import" "image export" gc login run ps logs exec stop rm inspect verify sign "key generate" "trust add" "trust list" "trust rm" "registry serve" "registry gc" "registry robot create" "registry robot list" "registry robot rm" "registry htpasswd")
{
	echo "# sigil command reference"
	echo
	echo "Generated from \`sigil --help\` by \`tests/scripts/gen-cli-doc.sh\`; do not edit by hand."
	echo "Exit codes: 0 success; 125 sigil's own failure; otherwise the container's (run, exec)."
	echo
	echo "## sigil"
	echo
	echo '```'
	"$SIGIL" --help
	echo '```'
	for c in "${cmds[@]}"; do
		echo
		echo "## sigil $c"
		echo
		echo '```'
		# shellcheck disable=SC2086
		"$SIGIL" $c --help | sed '/^Global Flags:/,$d'
		echo '```'
	done
} >Documentation/cli.md
