/*
 * pause: PID 1 of a CRI pod whose containers share one PID namespace.
 *
 * It keeps that namespace alive while the pod's containers come and go,
 * and reaps the zombies they leave: orphans are reparented to PID 1, and
 * a PID 1 that never waits would fill the namespace with them. It exits
 * 0 on SIGINT or SIGTERM, and otherwise sleeps, as pause(2) does.
 *
 * It is not installed on its own: `make build` compiles it static
 * (cc -static -Os -s) and embeds it in sigil, and `sigil cri serve`
 * writes it once under --state as the only file of the infra container's
 * read-only root filesystem. Static, with libc only, so that what runs in
 * every such pod has nothing to load and costs a few pages of memory.
 *
 * The handlers only set flags; the work is done in the main loop. The
 * three signals are blocked except inside sigsuspend(2), pause(2) with a
 * signal mask, so that none can arrive between the check of the flags and
 * the sleep and be left unhandled until the next one.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t child_exited;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_child(int sig)
{
	(void)sig;
	child_exited = 1;
}

/* reap collects every child that has exited: SIGCHLD signals coalesce,
 * so one may stand for several exits. */
static void reap(void)
{
	for (;;) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid > 0 || (pid < 0 && errno == EINTR))
			continue;
		return; /* 0: no child has exited; ECHILD: no children */
	}
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sig == SIGCHLD)
		sa.sa_flags |= SA_NOCLDSTOP; /* a stopped child is no exit */
	sigaction(sig, &sa, NULL);
}

int main(void)
{
	sigset_t block, sleep_mask;

	if (getpid() != 1) {
		static const char msg[] = "pause: not PID 1 of a PID namespace: "
					  "orphaned processes will not be reaped here\n";
		ssize_t n = write(2, msg, sizeof msg - 1);
		(void)n;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &sleep_mask);
	sigdelset(&sleep_mask, SIGINT);
	sigdelset(&sleep_mask, SIGTERM);
	sigdelset(&sleep_mask, SIGCHLD);
	handle(SIGINT, on_stop);
	handle(SIGTERM, on_stop);
	handle(SIGCHLD, on_child);

	reap(); /* whatever exited before the handler was in place */
	for (;;) {
		if (stop_requested)
			return 0;
		if (child_exited) {
			child_exited = 0;
			reap();
			continue;
		}
		sigsuspend(&sleep_mask);
	}
}
