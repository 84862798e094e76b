/* A strcpy overflow caught by _FORTIFY_SOURCE: __strcpy_chk calls __chk_fail, which
   aborts with "*** buffer overflow detected ***: terminated". The call is written as the
   builtin that -D_FORTIFY_SOURCE=2 -O2 turns strcpy into, so every variant (-O0 too,
   where glibc's headers disable fortification) takes the same path. */
#include <stdio.h>
#include <string.h>

struct record { char name[8]; int id; };

__attribute__((noipa)) void set_name(struct record *r, const char *name)
{
	__builtin___strcpy_chk(r->name, name, sizeof(r->name));
}

int main(int argc, char **argv)
{
	struct record r = { "", argc };
	set_name(&r, argc > 1 ? argv[1] : "a name far longer than eight bytes");
	printf("%s %d\n", r.name, r.id);
	return 0;
}
