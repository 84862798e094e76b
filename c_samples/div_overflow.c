/* INT_MIN / -1 overflows: idiv raises #DE just as for a zero divisor, and the kernel
   reports SIGFPE with FPE_INTDIV for both; only the divisor tells them apart. */
#include <limits.h>
#include <stdio.h>

__attribute__((noipa)) int scale(int value, int divisor)
{
	return value / divisor;
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d\n", scale(INT_MIN, argc - 2));
	return 0;
}
