/* A crash in code that no file holds, as a JIT compiler (V8, LuaJIT, the JVM) makes it: map an
 * anonymous page, copy machine code into it, make it executable, call it. The code stores to
 * address 0: frame 0 lies in an anonymous executable mapping, frame 1 in run_jitted.
 *
 * Built with -DJIT_IN_GAP and 2 MiB segment alignment (the Makefile's jit_gap), the page goes
 * into the unmapped hole the kernel leaves between the executable's PT_LOADs (binfmt_elf.c
 * elf_map maps the whole span, then unmaps past each segment): inside the executable's span,
 * past the end of its .text, where no symbol's range reaches. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__)
/* movl $1, 0x0 ; ret */
static const unsigned char code[] = {0xc7, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xc3};
#elif defined(__aarch64__)
/* mov x0, #0 ; mov w1, #1 ; str w1, [x0] ; ret (little-endian words) */
static const unsigned char code[] = {0x00, 0x00, 0x80, 0xd2, 0x21, 0x00, 0x80, 0x52,
                                     0x01, 0x00, 0x00, 0xb9, 0xc0, 0x03, 0x5f, 0xd6};
#else
#error "jit.c: no machine code for this architecture"
#endif

typedef void (*jitted_fn)(void);
volatile int calls;

__attribute__((noinline)) static void run_jitted(jitted_fn fn) {
  fn();
  calls++; /* after the call: no tail call, run_jitted keeps its frame */
}

int main(void) {
  void *hint = NULL;
#ifdef JIT_IN_GAP
  /* 1 MiB past the start of the 2 MiB-aligned text segment: the hole before the next one */
  hint = (void *)(((uintptr_t)(void *)run_jitted & ~(uintptr_t)0x1fffff) + 0x100000);
#endif
  char *page = mmap(hint, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED || (hint && page != hint))
    return 2;
  memcpy(page, code, sizeof code);
  __builtin___clear_cache(page, page + sizeof code);
  if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0)
    return 3;
  run_jitted((jitted_fn)(void *)page);
  return 0;
}
