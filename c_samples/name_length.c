/* name_length ends in `jmp strlen` at -O2; strlen of NULL faults in libc's ifunc-selected variant (__strlen_avx2 and the like). */
#include <string.h>

__attribute__((noipa)) size_t name_length(const char *name)
{
	return strlen(name);
}

int main(int argc, char **argv)
{
	return (int)name_length(argc > 5 ? argv[1] : NULL);
}
