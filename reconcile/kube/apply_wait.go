package kube

import (
	"context"
	"time"
)

// waitApplied is Apply's stage 5: it waits until the informers have seen
// every object this Apply wrote or deleted, so the next Observe decides
// from them, and returns how many there were. Informers that lag longer
// than 30 s are logged, not an error: the next Observe sees what they
// caught up with, and the writes themselves went through.
func (c *Cluster) waitApplied(ctx context.Context) int {
	ws := c.written.take()
	if !c.objs().waitCaughtUp(ctx, ws, 30*time.Second) {
		c.opts.Logger.Warn("informers lag behind what was applied", "cluster", c.opts.Name, "objects", len(ws))
	}
	return len(ws)
}
