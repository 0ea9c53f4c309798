package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/berth-gpu/berth/reconcile/history"
)

func TestUsageText(t *testing.T) {
	u := []history.Usage{
		{UsageKey: history.UsageKey{Day: "2026-12-01", Team: "nlp", Cluster: "box", Flavor: "h100"}, MilliGPUMillis: 2000 * 3600e3},
		{UsageKey: history.UsageKey{Day: "2026-12-01", Team: "vision", Cluster: "box", Flavor: "h100"}, MilliGPUMillis: 500 * 3600e3},
		{UsageKey: history.UsageKey{Day: "2026-12-02", Team: "vision", Cluster: "box", Flavor: "a100"}, MilliGPUMillis: 8000 * 1800e3},
		{UsageKey: history.UsageKey{Day: "2026-12-02", Team: "vision", Cluster: "box", Flavor: "h100"}, MilliGPUMillis: 1},
	}
	resp := usageResponse{From: "2026-12-01", To: "2026-12-07", Teams: history.ByTeam(u)}
	for _, c := range []struct {
		daily bool
		want  string
	}{
		{false, `GPU-hours from 2026-12-01 to 2026-12-07 (UTC)
TEAM    GPU-HOURS  DAYS USED
nlp     2.000      1
vision  4.500      2
total   6.500
`},
		{true, `GPU-hours from 2026-12-01 to 2026-12-07 (UTC)
TEAM    DAY         GPU-HOURS
nlp     2026-12-01  2.000
vision  2026-12-01  0.500
vision  2026-12-02  4.000
total               6.500
`},
	} {
		var b strings.Builder
		if err := writeUsageText(&b, resp, c.daily); err != nil {
			t.Fatal(err)
		}
		if b.String() != c.want {
			t.Errorf("daily=%v:\n%s\nwant:\n%s", c.daily, b.String(), c.want)
		}
	}
}

// writeCounter counts the writes that reach it: each is a system call on
// a terminal or a pipe.
type writeCounter struct{ writes, bytes int }

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes++
	c.bytes += len(p)
	return len(p), nil
}

// TestUsageTextWritesThroughABuffer: `berth usage --daily` of 200 teams
// over a week reaches the terminal in a write per 64 KiB, not a write per
// cell and padding.
func TestUsageTextWritesThroughABuffer(t *testing.T) {
	var u []history.Usage
	for team := range 200 {
		for day := 1; day <= 7; day++ {
			u = append(u, history.Usage{UsageKey: history.UsageKey{Day: fmt.Sprintf("2026-12-%02d", day),
				Team: fmt.Sprintf("team%03d", team), Cluster: "box", Flavor: "h100"}, MilliGPUMillis: 1000 * 3600e3})
		}
	}
	resp := usageResponse{From: "2026-12-01", To: "2026-12-07", Teams: history.ByTeam(u)}
	var c writeCounter
	if err := writeUsageText(&c, resp, true); err != nil {
		t.Fatal(err)
	}
	if most := c.bytes/(64<<10) + 1; c.writes > most {
		t.Errorf("%d bytes in %d writes, want at most %d", c.bytes, c.writes, most)
	}
}
