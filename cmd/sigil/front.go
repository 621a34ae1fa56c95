//go:build sigil_shim

package main

// This C constructor runs when the sigil binary is loaded, before the Go
// runtime and the initialisers of the 1,000-odd packages sigil links
// (about 13 ms). For `sigil run` it execs the embedded runner instead,
// once sigil has written it and the runtime shim under --state: the
// runner carries out the warm case itself (a stored image that the trust
// policy accepts without reading a signature) in about 2 ms of start-up,
// and hands everything else back to this binary with _SIGIL_FULL set (see
// cmd/sigil/runner). Only the global flags may precede "run"; any flag it
// does not know, --cpuprofile included, leaves sigil to itself.
// shim_name.h is written by `make build` with the digests of the two, so
// that a sigil binary only ever starts the programs it embeds.

/*
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim_name.h"

static int flag_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncmp(name, want, n) == 0;
}

__attribute__((constructor)) static void sigil_front(int argc, char **argv, char **envp)
{
	static const char *const value_flags[] = {
		"root", "state", "policy", "registries-conf", "insecure-registry", "log-level", NULL,
	};
	const char *state = "/run/sigil";
	char runner[PATH_MAX], shim[PATH_MAX], self[PATH_MAX];
	int i;

	(void)envp;
	if (argc < 2 || getenv("_SIGIL_FULL") != NULL)
		return;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *name = argv[i] + 2, *eq, *value;
		size_t n;
		int j, known = 0;

		if (argv[i][1] != '-')
			return;
		eq = strchr(name, '=');
		n = eq ? (size_t)(eq - name) : strlen(name);
		if (flag_is(name, n, "insecure-policy"))
			continue;
		for (j = 0; value_flags[j] != NULL; j++)
			known |= flag_is(name, n, value_flags[j]);
		if (!known)
			return;
		if (eq) {
			value = eq + 1;
		} else {
			if (++i >= argc)
				return;
			value = argv[i];
		}
		if (flag_is(name, n, "state"))
			state = value;
	}
	if (i >= argc || strcmp(argv[i], "run") != 0)
		return;
	if (snprintf(runner, sizeof runner, "%s/shim/%s", state, SIGIL_RUNNER_NAME) >= (int)sizeof runner ||
	    snprintf(shim, sizeof shim, "%s/shim/%s", state, SIGIL_SHIM_NAME) >= (int)sizeof shim)
		return;
	if (access(runner, X_OK) != 0 || access(shim, X_OK) != 0)
		return; // not written yet: the first run writes them
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
	if (len <= 0)
		return;
	self[len] = '\0';
	if (setenv("_SIGIL_BINARY", self, 1) != 0 || setenv("_SIGIL_SHIM", shim, 1) != 0)
		goto out;
	execv(runner, argv);
out:
	unsetenv("_SIGIL_BINARY");
	unsetenv("_SIGIL_SHIM");
}
*/
import "C"
