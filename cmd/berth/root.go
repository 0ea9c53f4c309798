package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth/cue"
)

// Exit codes.
const (
	exitOK      = 0 // success; for validate: the repository is valid
	exitInvalid = 1 // the input is invalid (the user must fix it)
	exitError   = 2 // usage error, or berth itself failed
)

// invalidError marks an error as the user's input being wrong (exit 1)
// rather than berth failing (exit 2).
type invalidError struct{ err error }

func (e invalidError) Error() string { return e.err.Error() }
func (e invalidError) Unwrap() error { return e.err }

// reportedError is an error whose details the command already printed.
type reportedError struct{ code int }

func (e reportedError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Main runs berth with os.Args and returns the exit code.
func Main() int {
	return run(os.Args[1:], os.Stdout, os.Stderr)
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var rep reportedError
	if errors.As(err, &rep) {
		return rep.code
	}
	fmt.Fprintf(stderr, "berth: %v\n", err)
	var inv invalidError
	var cerrs cue.Errors
	if errors.As(err, &inv) || errors.As(err, &cerrs) {
		return exitInvalid
	}
	return exitError
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "GitOps for GPU clusters: workloads and quotas as CUE in Git",
		Long: `berth turns a Git repository of CUE definitions (clusters, GPU flavors,
teams and their quotas, and workloads of every kind: training, batch,
service, inference, notebook) into decisions and running work.

Start with 'berth init DIR' for an example repository, then
'berth validate DIR' to check it.

Exit status: 0 success, 1 the input is invalid (the user must fix it),
2 a usage error or berth itself failed.

Shell completion: source <(berth completion bash) in bash; see
'berth completion --help' for zsh, fish and powershell.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nrun '%s --help' for usage", err, c.CommandPath())}
	})
	root.AddCommand(
		newValidateCmd(),
		newInitCmd(),
		newVersionCmd(),
		newPlanCmd(),
		newSnapshotCmd(),
		newServeCmd(),
		newStatusCmd(),
		newUsageCmd(),
		newExplainCmd(),
		newOpenCmd(),
		newLogsCmd(),
		newShimCmd(),
		newEvalCmd(),
		newSimulateCmd(),
		newLedgerCmd(),
	)
	return root
}

// usageError is a mistake in how berth was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
