/* A SIGUSR1 handler that itself faults: the crash is inside a signal handler. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile int *target;

__attribute__((noipa)) void on_usr1(int sig)
{
	*target = sig;
}

__attribute__((noipa)) void busy_loop(void)
{
	raise(SIGUSR1);
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	busy_loop();
	puts("not reached");
	return 0;
}
