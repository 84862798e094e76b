// C++ locals gdb's bt full prints in full (issue #17): a class with a base class, one with
// two bases, a class with a virtual function (its vptr), a reference to a struct, and an
// empty class; then a null write.
struct Base { int id; };
struct Named { const char *name; };
struct Derived : Base { long extra; };
struct Both : Base, Named { bool ok; };
struct Empty { };
struct Shape { virtual ~Shape() {} int sides = 3; };
struct Circle : Shape { double radius = 2.5; };
struct Holder : Empty { int held; };

__attribute__((noipa)) int crash(const Derived &ref, int n)
{
	Derived d = ref;
	Both both;
	both.id = 4;
	both.name = "both";
	both.ok = true;
	Empty empty;
	Circle circle;
	Holder holder;
	holder.held = 9;
	const Derived &alias = ref;
	*(volatile int *)0 = d.id + both.id + circle.sides + holder.held + alias.id + n + (int)sizeof empty;
	return 0;
}

int main()
{
	Derived d;
	d.id = 1;
	d.extra = 2;
	return crash(d, 1);
}
