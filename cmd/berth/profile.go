package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// profilePrefix is --profile of the command running, for the loader: a
// child process that evaluates writes its own CPU profile beside berth's.
var profilePrefix string

// withProfile adds --profile PREFIX to cmd: the command then writes
// PREFIX.cpu.pprof and PREFIX.heap.pprof (berth's own process), and each
// evaluation process it starts PREFIX.eval-PID.cpu.pprof, for go tool
// pprof. README's "Where the time goes" says how to read them.
func withProfile(cmd *cobra.Command) *cobra.Command {
	var prefix string
	cmd.Flags().StringVar(&prefix, "profile", "", "write CPU and heap profiles to PREFIX.cpu.pprof, PREFIX.heap.pprof and PREFIX.eval-PID.cpu.pprof (go tool pprof reads them)")
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if prefix == "" {
			return run(c, args)
		}
		f, err := os.Create(prefix + ".cpu.pprof")
		if err != nil {
			return usageError{fmt.Errorf("--profile: %w", err)}
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
		profilePrefix = prefix
		defer func() { profilePrefix = "" }()
		err = run(c, args)
		pprof.StopCPUProfile()
		return errors.Join(err, writeHeapProfile(prefix+".heap.pprof"))
	}
	return cmd
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("--profile: %w", err)
	}
	runtime.GC() // the heap as of now, not as of the last collection
	err = pprof.WriteHeapProfile(f)
	return errors.Join(err, f.Close())
}
