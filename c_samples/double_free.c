/* Frees one block twice: glibc's tcache notices and aborts with
   "free(): double free detected in tcache 2". */
#include <stdlib.h>
#include <string.h>

struct session { char *token; };

__attribute__((noipa)) void close_session(struct session *s)
{
	free(s->token);
}

int main(void)
{
	struct session s = { malloc(32) };
	strcpy(s.token, "abc");
	close_session(&s);
	close_session(&s);
	return 0;
}
