// A googletest suite whose death test passes: the statement runs in a forked child that
// crashes (a null write), which is what EXPECT_DEATH expects. Built by the tests where
// libgtest-dev is installed: g++ -g gtest_death.cpp -lgtest -pthread
#include <gtest/gtest.h>

static void __attribute__((noinline)) store_through(int *p) { *p = 42; }

TEST(Parser, RejectsNull) { EXPECT_DEATH(store_through(nullptr), ""); }

TEST(Parser, Adds) { EXPECT_EQ(2 + 2, 4); }

int main(int argc, char **argv) {
    testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
