/* Tail calls at -O2 whose DWARF call sites name no one chain: dispatch reaches crash_here through
   left or through right (an ambiguous chain: gdb shows neither), and with "loop" ping and pong
   tail-call each other before ping tail-calls crash_here (a loop of tail calls). */
#include <string.h>

__attribute__((noipa)) void crash_here(volatile int *p)
{
	*p = 1;
}

__attribute__((noipa)) void left(volatile int *p)
{
	crash_here(p);
}

__attribute__((noipa)) void right(volatile int *p)
{
	crash_here(p);
}

__attribute__((noipa)) void dispatch(int n, volatile int *p)
{
	if (n & 1)
		left(p);
	else
		right(p);
}

__attribute__((noipa)) void pong(int n, volatile int *p);

__attribute__((noipa)) void ping(int n, volatile int *p)
{
	if (n <= 0)
		crash_here(p);
	else
		pong(n - 1, p);
}

__attribute__((noipa)) void pong(int n, volatile int *p)
{
	ping(n - 1, p);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "loop") == 0)
		ping(argc, 0);
	else
		dispatch(argc, 0);
	return 0;
}
