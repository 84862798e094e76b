/* Calls a function pointer that points into the heap: the heap is not executable (NX),
   so the instruction fetch faults with SIGSEGV SEGV_ACCERR and si_addr == pc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*handler_fn)(int);

__attribute__((noipa)) int dispatch(handler_fn fn, int value)
{
	return fn(value) + 1;
}

__attribute__((noipa)) int run_plugin(int value)
{
	unsigned char *code = malloc(64);
	memset(code, 0xc3, 64); /* ret; ret; ... never runs */
	return dispatch((handler_fn)(void *)code, value);
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d\n", run_plugin(argc));
	return 0;
}
