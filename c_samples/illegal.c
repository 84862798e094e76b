/* __builtin_trap() compiles to ud2: SIGILL, ILL_ILLOPN. */
#include <stdio.h>

__attribute__((noipa)) void unreachable_state(int state)
{
	if (state > 0)
		__builtin_trap();
}

int main(int argc, char **argv)
{
	(void)argv;
	unreachable_state(argc);
	puts("not reached");
	return 0;
}
