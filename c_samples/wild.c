/* Reads through a wild pointer. With no argument the pointer is 0x4141414141414141 (bytes
   of "AAAAAAAA", as after a buffer overflow): not canonical on x86_64, so the CPU raises a
   general-protection fault and the kernel sends SIGSEGV with SI_KERNEL and no address.
   With the argument "unmapped" it is a canonical address nothing is mapped at
   (SEGV_MAPERR). */
#include <stdio.h>
#include <string.h>

struct item { long id; struct item *next; };

__attribute__((noipa)) long next_id(const struct item *it)
{
	return it->next->id;
}

__attribute__((noipa)) long walk(const char *mode)
{
	struct item head = { 1, 0 };
	head.next = (struct item *)(strcmp(mode, "unmapped") == 0 ? 0x10000000000UL : 0x4141414141414141UL);
	return next_id(&head);
}

int main(int argc, char **argv)
{
	printf("%ld\n", walk(argc > 1 ? argv[1] : "overflow"));
	return 0;
}
