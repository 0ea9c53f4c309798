package kube

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// applyTeams is Apply's stage 1: it applies the namespace and quota of
// each team the changes queue or start a run of, rendered from cfg, and
// returns the teams that failed (their changes fail in stage 2).
func (c *Cluster) applyTeams(ctx context.Context, cfg *berth.Config, changes []reconcile.Change) map[string]error {
	var teams []string
	seen := map[string]bool{}
	for _, ch := range changes {
		if t := ch.Workload.Team; needsNamespace(ch.Op) && !seen[t] {
			seen[t] = true
			teams = append(teams, t)
		}
	}
	slices.Sort(teams)
	errs := map[string]error{}
	var mu sync.Mutex
	c.parallel(len(teams), func(i int) {
		team := teams[i]
		objs, err := RenderTeam(c.opts.Render, cfg, team)
		if err == nil {
			for _, obj := range objs {
				if _, err = c.applyObject(ctx, obj); err != nil {
					break
				}
			}
		}
		if err != nil {
			mu.Lock()
			errs[team] = fmt.Errorf("team %s: namespace: %w", team, err)
			mu.Unlock()
		}
	})
	return errs
}
