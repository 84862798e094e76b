/* A chain of two tail calls at -O2: cleanup_session jumps to release, release jumps to free, and free aborts on the double free ("free(): double free detected in tcache 2"). */
#include <stdlib.h>

struct session {
	char *buf;
};

__attribute__((noipa)) void release(struct session *s)
{
	free(s->buf);
}

__attribute__((noipa)) void cleanup_session(struct session *s)
{
	release(s);
}

int main(void)
{
	struct session s = {malloc(32)};
	free(s.buf);
	cleanup_session(&s);
	return 0;
}
