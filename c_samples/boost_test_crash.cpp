// A Boost.Test test case whose body crashes: a null write. Run with
// --catch_system_errors=no, or Boost's execution monitor turns the signal into a failed test
// and no core is written; the core then shows, below the test's test_method, the invoker
// BOOST_AUTO_TEST_CASE generates and Boost's runner. Built by the tests where Debian's
// libboost-test-dev is installed:
// g++ -g boost_test_crash.cpp -lboost_unit_test_framework
#define BOOST_TEST_MODULE crash
#define BOOST_TEST_DYN_LINK
#include <boost/test/unit_test.hpp>

static void __attribute__((noinline)) store_through(int *p) { *p = 42; }

BOOST_AUTO_TEST_SUITE(parser)

BOOST_AUTO_TEST_CASE(stores_through_null) { store_through(nullptr); }

BOOST_AUTO_TEST_SUITE_END()
