//go:build unix

package schedule_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock counts a benchmark's iterations and the CPU time the process
// spent on them.
type cpuClock struct {
	start time.Duration
	n     int
}

func startCPU() *cpuClock { return &cpuClock{start: processCPU()} }

// report adds cpu-ms/op: user and system time of the whole process (the
// garbage collector's workers included) per iteration.
func (c *cpuClock) report(b *testing.B) {
	if c.n > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(c.n)/float64(time.Millisecond), "cpu-ms/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
