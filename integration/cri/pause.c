/*
 * The pod sandbox's init for the CRI suite (what registry.k8s.io/pause is):
 * holds the pod's namespaces open, reaps any child it inherits, and exits 0
 * on SIGTERM or SIGINT. Built static (gcc -static) into an image that holds
 * only /pause, as the real pause image does; no registry is reachable here.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void down(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct sigaction sa;

	if (getpid() != 1)
		fprintf(stderr, "pause: not PID 1\n");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = down;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return 1;
	sa.sa_handler = reap;
	sa.sa_flags = SA_NOCLDSTOP;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return 2;
	for (;;)
		pause();
}
