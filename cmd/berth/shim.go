package main

import (
	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth/reconcile/local"
)

// newShimCmd is `berth shim DIR`, hidden: the local backend re-executes
// berth as the supervisor of one pod (see local.RunShim). People never run
// it.
func newShimCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "shim POD-DIR",
		Short:  "Supervise one pod of the local backend (internal)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := local.RunShim(args[0], cmd.ErrOrStderr()); code != 0 {
				return reportedError{code}
			}
			return nil
		},
	}
}
