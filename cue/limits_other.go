//go:build !linux

package cue

import (
	"os"
	"runtime/debug"
)

// setChildLimits sets what Go can set where berth does not know how to ask
// the kernel for limits: the child's own watch is its only bound.
func setChildLimits(opts Options) error {
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(opts.MaxMemory / 2)
	debug.SetMaxStack(int(max(opts.MaxMemory/4, 64<<20)))
	return nil
}

// cpuLimitReached never fires: there is no kernel limit.
func cpuLimitReached() <-chan os.Signal { return nil }
