package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/status"
)

// maxAnswer bounds what a command reads from a serve: several clusters'
// snapshots at most.
const maxAnswer = 4 * cue.MaxSnapshotSize

// clientOptions find a running serve.
type clientOptions struct {
	server    string
	stateDir  string
	tokenFile string
}

func (c *clientOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.server, "server", "", "address of a running 'berth serve' (default: read from --state-dir)")
	cmd.Flags().StringVar(&c.stateDir, "state-dir", defaultStateDir(), "the state directory of the 'berth serve' to ask")
	cmd.Flags().StringVar(&c.tokenFile, "api-token-file", "", "file holding the token of a serve with --api-token-file (default: $BERTH_API_TOKEN, else the serve's own file when readable)")
}

// find is the serve to ask: its address and its token file ("" when it
// has none or --server names it).
func (c *clientOptions) find() (serveInfo, error) {
	if c.server != "" {
		return serveInfo{Address: c.server}, nil
	}
	b, err := os.ReadFile(filepath.Join(c.stateDir, "serve.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return serveInfo{}, fmt.Errorf("no 'berth serve' is running with state dir %s (start one, or pass --server or --state-dir)", c.stateDir)
		}
		return serveInfo{}, err
	}
	var info serveInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return serveInfo{}, fmt.Errorf("%s: %w", filepath.Join(c.stateDir, "serve.json"), err)
	}
	return info, nil
}

func (c *clientOptions) get(path string) ([]byte, int, error) {
	info, err := c.find()
	if err != nil {
		return nil, 0, err
	}
	addr := info.Address
	token, err := clientToken(c.tokenFile, info.TokenFile)
	if err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequest(http.MethodGet, addr+path, nil)
	if err != nil {
		return nil, 0, usageError{err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("ask berth serve at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	// What a serve answers is bounded like any snapshot berth reads.
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err == nil && len(b) > maxAnswer {
		return nil, 0, fmt.Errorf("berth serve at %s answered more than %d MiB to %s", addr, maxAnswer>>20, path)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		what := "no token was sent"
		if token != "" {
			what = "the token sent is not its token"
		}
		return nil, 0, usageError{fmt.Errorf("berth serve at %s requires a token and %s: pass --api-token-file FILE or set $BERTH_API_TOKEN", addr, what)}
	}
	return b, resp.StatusCode, err
}

func newStatusCmd() *cobra.Command {
	var c clientOptions
	var output *outputFlag
	var team *string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every workload of every kind: state, GPUs, since when, and why",
		Long: `status asks the running 'berth serve' for the state of every workload
run on the clusters it runs: queued (with its place in line), admitted,
running, succeeded, failed (with the reason), preempted, rejected or
waiting (for a dependency, a backoff or the next cron tick). --team T
shows only team T's workloads (its names complete from the repository in
the current directory).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, code, err := c.get("/api/status")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("berth serve answered %d: %s", code, b)
			}
			if !output.text() && *team == "" {
				return output.writeJSON(cmd.OutOrStdout(), b)
			}
			var resp statusResponse
			if err := json.Unmarshal(b, &resp); err != nil {
				return err
			}
			if *team != "" {
				resp = statusOfTeam(resp, *team)
			}
			if !output.text() {
				return output.write(cmd.OutOrStdout(), resp)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "revision %s\n", resp.Revision)
			if resp.Applied != "" && resp.Applied != resp.Revision {
				fmt.Fprintf(w, "applied  %s (the newest revision is invalid)\n", resp.Applied)
			}
			for _, e := range resp.Invalid {
				fmt.Fprintf(w, "invalid: %s\n", e.Error())
			}
			if resp.Error != "" {
				fmt.Fprintf(w, "error: %s\n", resp.Error)
			}
			for _, cl := range resp.Clusters {
				fmt.Fprintf(w, "\ncluster %s\n", cl.Name)
				if cl.Error != "" {
					fmt.Fprintf(w, "error: %s\n", cl.Error)
				}
				if err := status.WriteWorkloadsText(w, cl.Workloads, resp.Time); err != nil {
					return err
				}
			}
			return nil
		},
	}
	c.flags(cmd)
	output = addOutputFlag(cmd, formatText, formatJSON, formatYAML)
	team = addTeamFlag(cmd, currentDir)
	return cmd
}

func newExplainCmd() *cobra.Command {
	var c clientOptions
	cmd := &cobra.Command{
		Use:   "explain WORKLOAD",
		Short: "Say why a workload is queued, rejected, waiting or where it runs",
		Long: `explain asks the running 'berth serve' about one workload ("team/name", or
a name unique across teams): its decision and the named reason, its place
in line and estimated start, what it asks for, its team's quota, whom it
would preempt, where it is defined, and what can be changed about it.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeWorkloads(currentDir),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, code, err := c.get("/api/explain?workload=" + url.QueryEscape(args[0]))
			if err != nil {
				return err
			}
			if code == http.StatusNotFound {
				return invalidError{errors.New(string(trimNL(b)))}
			}
			if code != http.StatusOK {
				return fmt.Errorf("berth serve answered %d: %s", code, trimNL(b))
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	c.flags(cmd)
	return cmd
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
