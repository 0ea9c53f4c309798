package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth/fixtures"
)

func newInitCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Write an example repository to start from",
		Long: `init writes a working example repository into DIR: a local GPU box, three
teams (two sharing quota in a cohort), a template package the workloads
import, and a workload of every kind. DIR must be empty or not exist.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !force {
				return usageError{fmt.Errorf("%s is not empty; choose a new directory or pass --force to write over it", dir)}
			}
			n := 0
			err := fs.WalkDir(fixtures.Demo(), ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				target := filepath.Join(dir, filepath.FromSlash(p))
				if d.IsDir() {
					return os.MkdirAll(target, 0o755)
				}
				b, err := fs.ReadFile(fixtures.Demo(), p)
				if err != nil {
					return err
				}
				n++
				return os.WriteFile(target, b, 0o644)
			})
			if err != nil {
				return fmt.Errorf("init %s: %w", dir, err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote an example repository to %s (%d files)\n", dir, n)
			fmt.Fprintf(w, "next:\n  berth validate %s\n", dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "write into a directory that is not empty")
	return cmd
}
