/* A tail call that is a 2-byte jmp rel8 at -O2 (Intel SDM Vol. 2A, JMP: EB cb): step's last act is a call of the local function right after it; ud2 (__builtin_trap) then raises SIGILL. */
#include <stdio.h>
static __attribute__((noipa)) void unreachable_state(int state);
__attribute__((noipa)) void step(int state) { unreachable_state(state); }
static __attribute__((noipa)) void unreachable_state(int state)
{
	if (state > 0)
		__builtin_trap();
}

int main(int argc, char **argv)
{
	(void)argv;
	step(argc);
	puts("not reached");
	return 0;
}
