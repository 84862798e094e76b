/* Unbounded recursion: the stack overflows into the guard page (SIGSEGV). */
#include <stdio.h>

__attribute__((noipa)) long recurse(long depth, volatile char *prev)
{
	volatile char pad[64];
	pad[0] = (char)depth;
	pad[63] = prev ? prev[0] : 0;
	return recurse(depth + 1, pad) + pad[1];
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%ld\n", recurse(argc, NULL));
	return 0;
}
