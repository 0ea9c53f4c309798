package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
)

// Shell completion of flag values and arguments that name something the
// repository defines: its clusters and its workloads (team/name, so a team
// is completed on the way). The repository is loaded as validate loads it;
// one that does not load completes nothing.

// repoDir says where the repository of a command line is.
type repoDir func(cmd *cobra.Command, args []string) string

// dirArg is a command's first argument, or the current directory.
func dirArg(cmd *cobra.Command, args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "."
}

// repoFlag is the directory a command's --repo names, or the current
// directory (a URL completes nothing).
func repoFlag(cmd *cobra.Command, args []string) string {
	if v, _ := cmd.Flags().GetString("repo"); v != "" {
		return v
	}
	return "."
}

// currentDir is the current directory.
func currentDir(*cobra.Command, []string) string { return "." }

// completeConfig loads the repository at dir for a completion.
func completeConfig(dir string) *berth.Config {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	res, err := loadDir(dir)
	if err != nil {
		return nil
	}
	return res.Config
}

// completeClusters completes the names of the repository's clusters.
func completeClusters(dir repoDir) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		cfg := completeConfig(dir(cmd, args))
		if cfg == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return withPrefix(cfg.ClusterNames(), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeWorkloads completes the first argument with the repository's
// workloads, as team/name.
func completeWorkloads(dir repoDir) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cfg := completeConfig(dir(cmd, args))
		if cfg == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ids []string
		for _, id := range cfg.WorkloadIDs() {
			ids = append(ids, string(id))
		}
		return withPrefix(ids, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// withPrefix keeps the names that start with prefix, in order.
func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}
