// googletest death tests whose child dies the wrong way, beside one that passes: each child
// crashes and dumps a core, but googletest's parent fails WrongSignal (SIGSEGV where
// SIGABRT is wanted) and WrongMessage (stderr does not match) and exits 1. Built by the
// tests where libgtest-dev is installed: g++ -g gtest_death_wrong.cpp -lgtest -pthread
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

static void __attribute__((noinline)) store_through(int *p) { *p = 42; }

static void __attribute__((noinline)) fail_check(const char *what) {
    std::fprintf(stderr, "check failed: %s\n", what);
    std::abort();
}

TEST(Death, Passes) { EXPECT_DEATH(store_through(nullptr), ""); }

TEST(Death, WrongSignal) { EXPECT_EXIT(store_through(nullptr), testing::KilledBySignal(SIGABRT), ""); }

TEST(Death, WrongMessage) { EXPECT_DEATH(fail_check("size"), "check failed: index"); }

int main(int argc, char **argv) {
    testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
