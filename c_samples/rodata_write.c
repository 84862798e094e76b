/* Writes into a string literal: .rodata is mapped read-only, so SIGSEGV with SEGV_ACCERR. */
#include <stdio.h>

__attribute__((noipa)) void upcase_first(char *word)
{
	if (word[0] >= 'a' && word[0] <= 'z')
		word[0] = (char)(word[0] - 'a' + 'A');
}

__attribute__((noipa)) void greet(void)
{
	upcase_first((char *)"hello");
}

int main(void)
{
	greet();
	puts("not reached");
	return 0;
}
