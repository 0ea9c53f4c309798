package cue

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"

	"golang.org/x/sys/unix"
)

// setChildLimits puts a child process under its bounds before it
// evaluates anything:
//
//   - its garbage collector aims at half of MaxMemory (GOGC off: collect
//     only near that goal, which halves the collector's share of a large
//     evaluation), and goroutine stacks are capped at a quarter of it;
//   - the kernel refuses it address space beyond what it has mapped now
//     plus MaxMemory (RLIMIT_AS). What is mapped now is the runtime's
//     reservations and the tree; what it adds while evaluating is the heap
//     and its metadata, thread stacks, and the memory the collector has
//     not returned yet. A Go program cannot be made to stay within a
//     resident-memory bound, but address space is a hard one: the
//     allocation that passes it fails, and the runtime exits. Measured:
//     a child starts at about 1.5 GiB of address space (reservations;
//     25 MiB resident) and adds at most 400 MiB while it evaluates the
//     generated 10,000-workload repository (peak RSS 270 to 310 MiB);
//     forty doublings of a string pass the 512 MiB default in 0.6 s;
//   - the kernel stops it when it has used a little more than Timeout of
//     CPU time (RLIMIT_CPU: SIGXCPU, on which it reports and exits, then
//     SIGKILL two seconds later). Its own watch stops it at Timeout with
//     the same report; the kernel is for when the watch cannot run.
func setChildLimits(opts Options) error {
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(opts.MaxMemory / 2)
	debug.SetMaxStack(int(max(opts.MaxMemory/4, 64<<20)))

	// When memory runs short for everything (a container's limit, with
	// two children near their budgets), the kernel's OOM killer is to
	// take a child, never berth.
	os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0)

	mapped, err := mappedBytes()
	if err != nil {
		return err
	}
	as := uint64(mapped + opts.MaxMemory)
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: as, Max: as}); err != nil {
		return fmt.Errorf("RLIMIT_AS: %w", err)
	}
	// The kernel counts CPU time in scheduler ticks for this limit, which
	// on a busy machine runs a few percent ahead of the exact time the
	// watch reads (SIGKILL came at 60 s by the watch's count otherwise):
	// a tenth more, so that the watch, which names what ran away, stops
	// the evaluation first.
	used, _ := processCPUTime()
	secs := uint64((used + opts.Timeout + opts.Timeout/10).Seconds()) + 1
	if err := unix.Setrlimit(unix.RLIMIT_CPU, &unix.Rlimit{Cur: secs, Max: secs + 2}); err != nil {
		return fmt.Errorf("RLIMIT_CPU: %w", err)
	}
	return nil
}

// cpuLimitReached is signalled when the kernel says the process passed
// its soft CPU time limit.
func cpuLimitReached() <-chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, unix.SIGXCPU)
	return c
}

// mappedBytes is the process's address space now (VmSize).
func mappedBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}
