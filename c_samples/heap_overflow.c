/* Writes past the end of the newest heap block into the top chunk's size field; the next
   malloc that carves from the top checks that size and aborts with
   "malloc(): corrupted top size". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noipa)) void copy_name(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i];
}

__attribute__((noipa)) char *rename_user(char *name, const char *src)
{
	copy_name(name, src, 40);
	return malloc(200);
}

int main(void)
{
	char src[64];
	memset(src, 'A', sizeof(src));
	char *name = malloc(24);
	printf("%p\n", (void *)rename_user(name, src));
	return 0;
}
