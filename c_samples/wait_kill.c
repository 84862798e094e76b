/* Says "ready" on stdout, then waits in pause() until another process kills it
   (the tests send SIGSEGV with kill(): si_code SI_USER and the sender's pid). */
#include <stdio.h>
#include <unistd.h>

__attribute__((noipa)) void wait_for_work(void)
{
	for (;;)
		pause();
}

int main(void)
{
	puts("ready");
	fflush(stdout);
	wait_for_work();
	return 0;
}
