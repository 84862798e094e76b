/* A shared library whose function faults (built as libcrash.so). */
#include <string.h>

__attribute__((noipa)) int lib_parse(const char *text, char *out)
{
	int n = (int)strlen(text);
	for (int i = 0; i < n; i++)
		out[i] = text[i];
	return n;
}

__attribute__((noipa)) int lib_entry(const char *text)
{
	return lib_parse(text, (char *)0x10);
}
