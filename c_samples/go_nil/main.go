// Go's fatal errors, one per argument, for cores made with GOTRACEBACK=crash: the runtime
// prints every goroutine, then re-raises SIGABRT (runtime.crash -> dieFromSignal) so that
// the kernel dumps core.
//
//	go_nil          a nil pointer dereference: runtime.sigpanic turns the SIGSEGV into a panic
//	go_nil divide   an integer division by zero: SIGFPE, the same way
//	go_nil panic    an explicit panic
//	go_nil method   an explicit panic in a method with a pointer receiver, main.(*ledger).post,
//	                called from one with a value receiver, main.ledger.settle, while another
//	                thread sits in read(2) under the method main.(*waiter).block: a method frame
//	                gdb can reach (no Go signal trampoline on that stack)
//	go_nil error    a panic with an error value made by errors.New
//	go_nil index    an index past a slice's length: runtime.boundsError (goPanicIndex)
//	go_nil slice    a slice from a negative index: boundsError's format for a negative x
//	go_nil deadlock every goroutine blocked: the scheduler's "fatal error: all goroutines are
//	                asleep - deadlock!" (runtime.fatal, no panic value)
//	go_nil mapwrites two goroutines writing one map: "fatal error: concurrent map writes"
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
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

//go:noinline
func pick(s []int, i int) int {
	return s[i] // i is 5, len(s) 3
}

//go:noinline
func tail(s []int, i int) []int {
	return s[i:] // i is -1
}

// race writes m from two goroutines until the runtime's check of hashWriting
// (runtime/map.go mapassign) sees the other's write; it does within milliseconds on two CPUs.
func race(m map[int]int) {
	for i := 0; i < 2; i++ {
		go func(k int) {
			for {
				m[k]++
			}
		}(i)
	}
	select {}
}

type ledger struct {
	name  string
	limit int
}

//go:noinline
func (l *ledger) post(amount int) {
	if amount > l.limit {
		panic("ledger " + l.name + ": amount over the limit")
	}
}

//go:noinline
func (l ledger) settle(amount int) {
	l.post(amount)
}

type waiter struct {
	fd int
}

// block reads a pipe nobody writes: a blocking read(2) keeps its thread in the kernel,
// where the runtime's panic cannot preempt it.
//
//go:noinline
func (w *waiter) block() {
	buf := make([]byte, 1)
	syscall.Read(w.fd, buf)
}

// waitInRead returns once a thread of this process sits in read(2) on fd, by
// /proc/self/task/*/syscall ("number args...", proc(5)), or after 10 s.
func waitInRead(fd int) {
	want := fmt.Sprintf("%d 0x%x ", syscall.SYS_READ, fd)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
		for _, task := range tasks {
			if text, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(text), want) {
				return
			}
		}
		time.Sleep(time.Millisecond)
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
	case "error":
		panic(errors.New("config: no key " + mode))
	case "index":
		fmt.Println(pick([]int{1, 2, 3}, len(os.Args)+3))
	case "slice":
		fmt.Println(tail([]int{1, 2, 3}, len(os.Args)-3))
	case "deadlock":
		<-make(chan int)
	case "mapwrites":
		race(make(map[int]int))
	case "method":
		var fds [2]int
		if err := syscall.Pipe(fds[:]); err != nil {
			panic(err)
		}
		go (&waiter{fd: fds[0]}).block()
		waitInRead(fds[0])
		ledger{name: "petty cash", limit: 10}.settle(len(os.Args) * 50)
	default:
		fill(list, 42)
		fmt.Println(list.value)
	}
}
