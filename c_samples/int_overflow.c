/* Signed overflow with -ftrapv (set per function, so no special build flags): the
   addition calls libgcc's __addvsi3, which calls abort() on overflow: SIGABRT. */
#include <limits.h>
#include <stdio.h>

__attribute__((noipa, optimize("trapv"))) int add_tickets(int total, int more)
{
	return total + more;
}

__attribute__((noipa)) int sell(int argc)
{
	return add_tickets(INT_MAX, argc);
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d\n", sell(argc));
	return 0;
}
