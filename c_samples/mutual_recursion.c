/* Unbounded mutual recursion: a() and b() call each other until the stack overflows into
 * the guard page (SIGSEGV). Which of the two is on top then depends on the stack limit. */
#include <stdio.h>

long b(long depth, volatile char *prev);

__attribute__((noipa)) long a(long depth, volatile char *prev)
{
	volatile char pad[48];
	pad[0] = (char)depth;
	pad[47] = prev ? prev[0] : 0;
	return b(depth + 1, pad) + pad[1];
}

__attribute__((noipa)) long b(long depth, volatile char *prev)
{
	volatile char pad[80];
	pad[0] = (char)depth;
	pad[79] = prev ? prev[0] : 0;
	return a(depth + 1, pad) + pad[1];
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%ld\n", a(argc, NULL));
	return 0;
}
