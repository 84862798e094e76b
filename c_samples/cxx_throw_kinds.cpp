// Three different exceptions nobody catches, thrown from one function: three bugs.
//   cxx_throw_kinds int | myerr | range
#include <cstring>
#include <stdexcept>

struct MyErr {
	int code;
};

__attribute__((noipa)) void f(const char *kind)
{
	if (std::strcmp(kind, "int") == 0)
		throw 42;
	if (std::strcmp(kind, "myerr") == 0)
		throw MyErr{7};
	throw std::out_of_range("index 9 out of range");
}

int main(int argc, char **argv)
{
	f(argc > 1 ? argv[1] : "range");
	return 0;
}
