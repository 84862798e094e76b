/* A failed assert(): glibc prints the message, stores it in __abort_msg and aborts. */
#include <assert.h>
#include <stdio.h>

__attribute__((noipa)) void check_balance(int balance)
{
	assert(balance >= 0 && "balance must never go negative");
}

__attribute__((noipa)) void withdraw(int balance, int amount)
{
	check_balance(balance - amount);
}

int main(int argc, char **argv)
{
	(void)argv;
	withdraw(10, 10 + argc);
	puts("not reached");
	return 0;
}
