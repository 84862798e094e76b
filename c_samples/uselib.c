/* Calls into libcrash.so, which writes near address 0. */
#include <stdio.h>

int lib_entry(const char *text);

__attribute__((noipa)) int run_parser(const char *arg)
{
	return lib_entry(arg) + 1;
}

int main(int argc, char **argv)
{
	printf("%d\n", run_parser(argc > 1 ? argv[1] : "hello"));
	return 0;
}
