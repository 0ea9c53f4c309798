package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/status"
)

// addTeamFlag adds --team to a command that lists workloads: only the
// team's rows are shown. What is decided does not change: the team's
// workloads are still weighed against every other team's. Its values
// complete with the teams of the repository dir names.
func addTeamFlag(cmd *cobra.Command, dir repoDir) *string {
	team := new(string)
	cmd.Flags().StringVar(team, "team", "", "show only this team's workloads and quota (deciding still weighs every team)")
	_ = cmd.RegisterFlagCompletionFunc("team", completeTeams(dir))
	return team
}

// completeTeams completes the names of the repository's teams.
func completeTeams(dir repoDir) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		cfg := completeConfig(dir(cmd, args))
		if cfg == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return withPrefix(cfg.TeamNames(), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// checkTeam is a usage error when the repository has no team of that name.
func checkTeam(cfg *berth.Config, team string) error {
	if team == "" {
		return nil
	}
	if _, ok := cfg.Teams[team]; !ok {
		return usageError{fmt.Errorf("--team %s: the repository defines the teams %s", team, strings.Join(cfg.TeamNames(), ", "))}
	}
	return nil
}

// planOfTeam is p with only the team's decisions and quota.
func planOfTeam(p *berth.Plan, team string) *berth.Plan {
	out := *p
	out.Decisions = slices.DeleteFunc(slices.Clone(p.Decisions), func(d *berth.Decision) bool { return d.Team != team })
	out.Quota = slices.DeleteFunc(slices.Clone(p.Quota), func(q berth.QuotaUse) bool { return q.Team != team })
	return &out
}

// statusOfTeam is resp with only the team's workloads, runs, decisions,
// quota and GPU-hours.
func statusOfTeam(resp statusResponse, team string) statusResponse {
	clusters := make([]clusterStatus, len(resp.Clusters))
	for i, cl := range resp.Clusters {
		cl.Workloads = slices.DeleteFunc(slices.Clone(cl.Workloads), func(w status.WorkloadStatus) bool { return w.Team != team })
		cl.Runs = slices.DeleteFunc(slices.Clone(cl.Runs), func(r reconcile.RunState) bool { return r.Workload.Team() != team })
		clusters[i] = cl
	}
	resp.Clusters = clusters
	if resp.Plans != nil {
		plans := make(map[string]*berth.Plan, len(resp.Plans))
		for name, p := range resp.Plans {
			plans[name] = planOfTeam(p, team)
		}
		resp.Plans = plans
	}
	if resp.Usage != nil {
		u := *resp.Usage
		u.Teams = slices.DeleteFunc(slices.Clone(u.Teams), func(t history.TeamUsage) bool { return t.Team != team })
		u.Rows = slices.DeleteFunc(slices.Clone(u.Rows), func(r usageRow) bool { return r.Team != team })
		resp.Usage = &u
	}
	return resp
}
