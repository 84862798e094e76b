// Go's fatal errors, one per argument, for cores made with GOTRACEBACK=crash: the runtime
// prints every goroutine, then re-raises SIGABRT (runtime.crash -> dieFromSignal) so that
// the kernel dumps core.
//
//	go_nil          a nil pointer dereference: runtime.sigpanic turns the SIGSEGV into a panic
//	go_nil divide   an integer division by zero: SIGFPE, the same way
//	go_nil panic    an explicit panic
package main

import (
	"fmt"
	"os"
)

type node struct {
	value int
	next  *node
}

//go:noinline
func fill(n *node, v int) {
	n.value = v // n is nil: the store faults
}

//go:noinline
func share(total, parts int) int {
	return total / parts // parts is 0
}

//go:noinline
func check(n int) {
	if n > 0 {
		panic(fmt.Sprintf("check: %d items left", n))
	}
}

func main() {
	var list *node
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "divide":
		fmt.Println(share(42, len(os.Args)-2))
	case "panic":
		check(len(os.Args) + 1)
	default:
		fill(list, 42)
		fmt.Println(list.value)
	}
}
