//go:build !unix

package schedule_test

import "testing"

// cpuClock reports nothing where getrusage is missing.
type cpuClock struct{ n int }

func startCPU() *cpuClock             { return &cpuClock{} }
func (c *cpuClock) report(*testing.B) {}
