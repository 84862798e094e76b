// A Catch2 (v2, single header) test whose body crashes: a null write. Catch2's fatal-condition
// handler reports the signal, then re-raises it, so the core shows Catch2's handler frames
// above the crash and its runner below. Built by the tests where Debian's catch2 is
// installed: g++ -g catch2_crash.cpp
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

static void __attribute__((noinline)) store_through(int *p) { *p = 42; }

TEST_CASE("parser stores through a null slot") { store_through(nullptr); }
