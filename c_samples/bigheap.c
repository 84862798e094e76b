/* Touches 220 MB of heap, then writes through a null pointer. */
#include <stdlib.h>
#include <string.h>

#define CHUNK (1 << 20)

__attribute__((noipa)) void consume(char **blocks, int n)
{
	for (int i = 0; i < n; i++) {
		blocks[i] = malloc(CHUNK);
		memset(blocks[i], i & 0xff, CHUNK);
	}
}

__attribute__((noipa)) void crash_after_heap(char **blocks)
{
	*(volatile long *)(long)blocks[0][7] = 1;
}

int main(void)
{
	static char *blocks[220];
	consume(blocks, 220);
	crash_after_heap(blocks);
	return 0;
}
