/* Integer division by zero: SIGFPE, FPE_INTDIV. */
#include <stdio.h>

__attribute__((noipa)) int average(int total, int count)
{
	return total / count;
}

__attribute__((noipa)) int report(int argc)
{
	return average(100, argc - 1);
}

int main(int argc, char **argv)
{
	(void)argv;
	printf("%d\n", report(argc));
	return 0;
}
