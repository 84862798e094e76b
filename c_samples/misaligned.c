/* A misaligned load with EFLAGS.AC set: Linux sets CR0.AM, so user-mode alignment checking
   traps (#AC) and the kernel sends SIGBUS with BUS_ADRALN. */
#include <stdio.h>

__attribute__((noipa)) long load_word(const char *base, long offset)
{
	long value;
	/* pushf; set AC (bit 18 of EFLAGS); popf; then a misaligned 8-byte load. */
	__asm__ volatile("pushfq\n\t"
			 "orl $0x40000, (%%rsp)\n\t"
			 "popfq\n\t"
			 "movq (%1,%2), %0"
			 : "=r"(value)
			 : "r"(base), "r"(offset)
			 : "memory", "cc");
	return value;
}

__attribute__((noipa)) long parse_header(const char *packet)
{
	return load_word(packet, 1);
}

int main(void)
{
	static long buffer[4];
	printf("%ld\n", parse_header((const char *)buffer));
	return 0;
}
