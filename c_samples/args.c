/* Arguments of every kind gdb's bt prints (issue #17): a char * holding HTML, a terminal
 * escape sequence and invalid UTF-8, an unreadable char *, char, bool, enum, double, a
 * struct by value and a pointer to a function; then a null write. */
#include <stdbool.h>
#include <stdio.h>

enum color { RED, GREEN, BLUE };
struct pair { long a; long b; };

__attribute__((noipa)) int report(const char *name, const char *bad, char initial, bool flag,
				  enum color color, double ratio, struct pair pair, int (*cb)(const char *))
{
	*(volatile int *)0 = initial + flag + color + (int)ratio + (int)pair.a;
	return cb(name) + (bad != 0);
}

int main(int argc, char **argv)
{
	(void)argv;
	struct pair pair = { 7, 8 };
	return report("<script>alert(1)</script>\x1b[31mred\xff\xfe" "aaaaaaaaaaaaaaaa", (const char *)0x10,
		      'A', argc > 0, BLUE, 1.5, pair, puts);
}
