/* Null pointer write three calls deep: build -> fill_list -> store_value. */
#include <stdio.h>
#include <stdlib.h>

struct node { long key; long value; };

__attribute__((noipa)) void store_value(struct node *n, long v)
{
	n->value = v;
}

__attribute__((noipa)) void fill_list(struct node **nodes, int count)
{
	for (int i = 0; i < count; i++)
		store_value(nodes[i], i * 2);
}

__attribute__((noipa)) void build(int count)
{
	struct node **nodes = calloc(count, sizeof(*nodes));
	for (int i = 0; i < count - 1; i++)
		nodes[i] = malloc(sizeof(struct node));
	fill_list(nodes, count);
}

int main(int argc, char **argv)
{
	(void)argv;
	build(argc + 3);
	puts("not reached");
	return 0;
}
