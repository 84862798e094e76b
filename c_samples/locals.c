/* Locals of every shape gdb's bt full prints in full (issue #17): a struct with a char *
 * and a size, a nested struct, a union, char arrays (with trailing NULs, all NULs, hostile bytes, longer
 * than print elements), int arrays (short, repeated, longer than print elements), an array
 * of structs, bit fields, enum and bool members, a pointer member, a 2-D array and an
 * anonymous union; then a null write. */
#include <stdbool.h>

enum mode { OFF, ON, AUTO };
struct config { const char *name; int size; };
struct point { int x; int y; };
struct node { int value; struct node *next; };
struct shape { struct point origin; struct point corners[2]; enum mode mode; bool visible; };
union number { int i; float f; unsigned char bytes[4]; };
struct flags { unsigned ready : 1; unsigned count : 3; int delta : 4; unsigned char tag; };
struct tagged { int kind; union { long l; double d; }; };

__attribute__((noipa)) int crash(struct config *cfg, int n)
{
	struct config local = *cfg;
	struct shape shape = { { 1, 2 }, { { 3, 4 }, { 5, 6 } }, AUTO, true };
	struct node tail = { 2, 0 };
	struct node head = { 1, &tail };
	union number num = { .f = 1.5f };
	struct flags flags = { 1, 5, -3, 'z' };
	struct tagged tagged = { 7, { .l = 42 } };
	char buf[6] = "abc";
	char zeros[16] = { 0 };
	char text[300];
	char hostile[26] = "<b>\x1b[31m\xff\xfe\"q\"";
	int arr[3] = { 1, 2, 3 };
	int empty[16] = { 0 };
	int mixed[14] = { 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8 };
	int many[250];
	struct point points[12] = { { 1, 1 } };
	int grid[2][3] = { { 1, 2, 3 }, { 4, 5, 6 } };
	for (int i = 0; i < (int)sizeof text - 1; i++)
		text[i] = (char)('a' + i % 26);
	text[sizeof text - 1] = 0;
	for (int i = 0; i < 250; i++)
		many[i] = i;
	*(volatile int *)0 = local.size + shape.origin.x + head.next->value + num.i + flags.count + tagged.kind
		+ buf[0] + hostile[0] + zeros[0] + text[0] + arr[0] + empty[0] + mixed[0] + many[0] + points[0].x + grid[1][1] + n;
	return 0;
}

int main(void)
{
	struct config cfg = { "x", 3 };
	return crash(&cfg, 1);
}
