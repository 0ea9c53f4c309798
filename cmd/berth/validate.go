package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
)

func newValidateCmd() *cobra.Command {
	var output *outputFlag
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a repository against the schema and report every error with its position",
		Long: `validate loads every CUE package in DIR (default: the current directory),
unifies it with berth's schema, checks the references between files, and
prints what it found, or every error with its CUE path and file:line:col.

Errors are sorted by position. In text, positions are relative to the
current directory (DIR/path/file.cue:line:col, so a terminal or editor
can open them); with -o json or -o yaml they are relative to DIR.

Files that could hold CUE but are not read (a .cue file whose name starts
with '.' or '_', which CUE ignores; a fifo or other special file; a
symlink leading outside the repository) are reported as warnings on
stderr (in -o json or yaml, under "warnings"); they do not change the exit
status.

An env value that looks like a credential (a known token prefix such as
ghp_, github_pat_, xoxb-, AKIA, sk-, glpat- or hf_; a PEM private key; a
URL with a password; a long random-looking value) is a warning with its
file:line:col, naming the variable but never the value: keep it in a
Secret instead (env: NAME: secret: {name, key}). --strict makes each such
warning an error (exit 1).

The CUE is evaluated in a child process, bounded by the kernel in memory
(--eval-memory, 512Mi) and CPU time: first within 1 s, then, when that is
not enough, again within --eval-timeout (60 s), as berth serve does. A
configuration that would run away is an error that points at what grows.

Exit status: 0 valid, 1 invalid, 2 usage or internal error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			fi, err := os.Stat(dir)
			if errors.Is(err, fs.ErrNotExist) {
				return usageError{fmt.Errorf("validate %s: no such directory", dir)}
			}
			if err != nil {
				return usageError{fmt.Errorf("validate %s: %w", dir, err)}
			}
			if !fi.IsDir() {
				return usageError{fmt.Errorf("validate %s: not a directory", dir)}
			}
			p := newProgress(cmd)
			p.show("validate %s: reading and evaluating the repository...", dir)
			res, err := loadDir(dir)
			p.done()
			if strict {
				res, err = strictCredentials(res, err)
			}
			return printValidation(cmd.OutOrStdout(), cmd.ErrOrStderr(), output, dir, res, err)
		},
	}
	output = addOutputFlag(cmd, formatText, formatJSON, formatYAML)
	cmd.Flags().BoolVar(&strict, "strict", false, "an env value that looks like a credential is an error, not a warning")
	evalBounds.register(cmd.Flags())
	return withProfile(cmd)
}

// validationJSON is what -o json (and yaml) prints.
type validationJSON struct {
	Valid     bool                      `json:"valid"`
	Errors    cue.Errors                `json:"errors"`
	Warnings  []cue.Warning             `json:"warnings,omitempty"`
	Teams     []string                  `json:"teams,omitempty"`
	Clusters  []string                  `json:"clusters,omitempty"`
	Workloads map[string]map[string]int `json:"workloads,omitempty"` // team -> kind -> count
}

func printValidation(stdout, stderr io.Writer, output *outputFlag, dir string, res cue.Result, err error) error {
	cfg := res.Config
	var errs cue.Errors
	if err != nil {
		if !asErrors(err, &errs) {
			return err
		}
	}
	if !output.text() {
		out := validationJSON{Valid: err == nil, Errors: errs, Warnings: res.Warnings}
		if out.Errors == nil {
			out.Errors = cue.Errors{}
		}
		if cfg != nil {
			out.Teams = cfg.TeamNames()
			out.Clusters = cfg.ClusterNames()
			out.Workloads = countKinds(cfg)
		}
		if e := output.write(stdout, out); e != nil {
			return e
		}
		if err != nil {
			return reportedError{exitInvalid}
		}
		return nil
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s: %s\n", posUnderDir(w.Pos, dir), w.Text())
	}
	if err != nil {
		for _, e := range errs {
			fmt.Fprintln(stderr, underDir(e, dir).Error())
		}
		fmt.Fprintf(stderr, "%d %s\n", len(errs), plural(len(errs), "error", "errors"))
		return reportedError{exitInvalid}
	}
	printSummary(stdout, cfg)
	return nil
}

// strictCredentials makes the credential warnings of a load errors, in
// position order with any others: the repository is then invalid.
func strictCredentials(res cue.Result, err error) (cue.Result, error) {
	var errs cue.Errors
	if err != nil && !asErrors(err, &errs) {
		return res, err
	}
	var warns []cue.Warning
	n := len(errs)
	for _, w := range res.Warnings {
		if w.Code == cue.WarnCredential {
			errs = append(errs, w.Error())
		} else {
			warns = append(warns, w)
		}
	}
	if len(errs) == n {
		return res, err
	}
	slices.SortStableFunc(errs, func(a, b cue.Error) int { return a.Pos().Compare(b.Pos()) })
	res.Warnings, res.Config = warns, nil
	return res, errs
}

// underDir makes an error's positions relative to the current directory
// rather than to the repository at dir.
func underDir(e cue.Error, dir string) cue.Error {
	if dir == "." || dir == "" {
		return e
	}
	ps := make([]berth.Pos, len(e.Positions))
	for i, p := range e.Positions {
		ps[i] = posUnderDir(p, dir)
	}
	e.Positions = ps
	return e
}

// posUnderDir makes a position relative to the current directory rather
// than to the repository at dir.
func posUnderDir(p berth.Pos, dir string) berth.Pos {
	if dir != "." && dir != "" && p.IsValid() && !strings.HasPrefix(p.File, "$") {
		p.File = path.Join(filepath.ToSlash(dir), p.File)
	}
	return p
}

func asErrors(err error, target *cue.Errors) bool {
	e, ok := err.(cue.Errors)
	if ok {
		*target = e
	}
	return ok
}

func countKinds(cfg *berth.Config) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, w := range cfg.Workloads {
		if out[w.Team] == nil {
			out[w.Team] = map[string]int{}
		}
		out[w.Team][string(w.Kind)]++
	}
	return out
}

// printSummary prints what a valid repository holds, per team and kind.
func printSummary(w io.Writer, cfg *berth.Config) {
	// Each team's workloads by kind and the GPUs they ask, in
	// thousandths, in one pass over the workloads (one pass per team was
	// 2 s for 50,000 workloads in 200 teams).
	type sums struct {
		kinds map[berth.Kind]int
		milli int64
	}
	byTeam := map[string]*sums{}
	for _, wl := range cfg.Workloads {
		s := byTeam[wl.Team]
		if s == nil {
			s = &sums{kinds: map[berth.Kind]int{}}
			byTeam[wl.Team] = s
		}
		s.kinds[wl.Kind]++
		s.milli += int64(wl.GPUMilli())
	}
	fmt.Fprintf(w, "valid: %d %s, %d %s, %d %s, %d %s\n",
		len(cfg.Clusters), plural(len(cfg.Clusters), "cluster", "clusters"),
		len(cfg.Flavors), plural(len(cfg.Flavors), "flavor", "flavors"),
		len(cfg.Teams), plural(len(cfg.Teams), "team", "teams"),
		len(cfg.Workloads), plural(len(cfg.Workloads), "workload", "workloads"))
	teams := cfg.TeamNames()
	for t := range byTeam {
		if _, ok := cfg.Teams[t]; !ok {
			teams = append(teams, t)
		}
	}
	slices.Sort(teams)
	for _, t := range teams {
		s := byTeam[t]
		if s == nil {
			s = &sums{}
		}
		var parts []string
		for _, k := range berth.Kinds {
			if n := s.kinds[k]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, k))
			}
		}
		if len(parts) == 0 {
			parts = []string{"no workloads"}
		}
		fmt.Fprintf(w, "  team %-12s %s; %s GPUs asked\n", t, strings.Join(parts, ", "), trimFloat(float64(s.milli)/1000))
	}
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
