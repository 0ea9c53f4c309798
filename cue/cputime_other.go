//go:build !unix

package cue

import "time"

// processCPUTime is not known here: Options.Timeout bounds wall time.
func processCPUTime() (time.Duration, bool) { return 0, false }
