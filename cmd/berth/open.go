package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/notebook"
	"github.com/berth-gpu/berth/status"
)

func newOpenCmd() *cobra.Command {
	var c clientOptions
	var browser bool
	cmd := &cobra.Command{
		Use:   "open WORKLOAD",
		Short: "Print where a running service or notebook is reached (a notebook's URL with its token)",
		Long: `open asks the running 'berth serve' where a service, inference server or
notebook ("team/name", or a name unique across teams) is reached now and
prints that URL. A notebook's URL carries its token, which only its
owner can read: on one machine it is kept in the serve's state directory
(secrets/, mode 0600), so run open as the user berth serve runs as. With
--browser the URL is also opened with xdg-open, where there is one.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeWorkloads(currentDir),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, code, err := c.get("/api/status")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("berth serve answered %d: %s", code, trimNL(b))
			}
			var resp statusResponse
			if err := json.Unmarshal(b, &resp); err != nil {
				return err
			}
			ws, err := findURL(resp.Clusters, args[0])
			if err != nil {
				return invalidError{err}
			}
			u := ws.URL
			if ws.Kind == berth.KindNotebook {
				if u, err = withNotebookToken(u, c, ws); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), u)
			if browser {
				openBrowser(u, cmd.ErrOrStderr())
			}
			return nil
		},
	}
	c.flags(cmd)
	cmd.Flags().BoolVar(&browser, "browser", false, "also open the URL with xdg-open")
	return cmd
}

// findURL finds the workload named by arg ("team/name", or a name unique
// across teams) among the clusters' statuses, and its run that is
// reached at a URL now. Each "no" says why.
func findURL(clusters []clusterStatus, arg string) (status.WorkloadStatus, error) {
	var runs []status.WorkloadStatus
	ids := map[berth.WorkloadID]bool{}
	for _, cl := range clusters {
		for _, ws := range cl.Workloads {
			if string(ws.Workload) == arg || (!strings.Contains(arg, "/") && ws.Workload.Name() == arg) {
				runs = append(runs, ws)
				ids[ws.Workload] = true
			}
		}
	}
	if len(ids) > 1 {
		names := make([]string, 0, len(ids))
		for id := range ids {
			names = append(names, string(id))
		}
		slices.Sort(names)
		return status.WorkloadStatus{}, fmt.Errorf("%s names %s: say which, as team/name", arg, strings.Join(names, " and "))
	}
	if len(runs) == 0 {
		return status.WorkloadStatus{}, fmt.Errorf("no workload %s runs on the clusters of this serve", arg)
	}
	for _, ws := range runs {
		if ws.URL != "" {
			return ws, nil
		}
	}
	last := runs[len(runs)-1]
	switch {
	case last.Kind != berth.KindService && last.Kind != berth.KindInference && last.Kind != berth.KindNotebook:
		return status.WorkloadStatus{}, fmt.Errorf("%s is a %s: only services, inference servers and notebooks are reached at a URL", last.Workload, last.Kind)
	case last.State != "running":
		why := last.State
		if last.Reason != "" {
			why += " (" + last.Reason + ")"
		}
		return status.WorkloadStatus{}, fmt.Errorf("%s has no URL: it is %s", last.Workload, why)
	}
	return status.WorkloadStatus{}, fmt.Errorf("%s has no URL: it is not exposed (set expose.hostPort on one machine, expose.host on Kubernetes) and declares no notebook port", last.Workload)
}

// withNotebookToken adds the notebook's token to its URL: on one machine,
// read from the serve's state directory, where only the user serve runs
// as can read it.
func withNotebookToken(u string, c clientOptions, ws status.WorkloadStatus) (string, error) {
	store := notebook.Store{Root: filepath.Join(c.stateDir, "clusters", ws.Cluster)}
	tok, err := store.ReadToken(ws.Workload)
	if err != nil {
		hint := "run berth open on the serve's machine, as the user berth serve runs as (the token is kept 0600), or pass its --state-dir"
		switch {
		case errors.Is(err, os.ErrNotExist) && strings.Contains(u, ".svc:"):
			hint = "on Kubernetes the token is the Secret " + ws.Workload.Name() + "-token in the team's namespace (kubectl get secret NAME-token -o jsonpath='{.data.token}' | base64 -d)"
		case errors.Is(err, os.ErrNotExist) && c.server != "":
			hint = "the token is kept on the serve's machine; run berth open there"
		}
		return "", fmt.Errorf("notebook %s: cannot read its token at %s: %s", ws.Workload, store.TokenFile(ws.Workload), hint)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("notebook %s: URL %q: %w", ws.Workload, u, err)
	}
	q := parsed.Query()
	q.Set("token", tok)
	parsed.RawQuery = q.Encode()
	return parsed.String(), nil
}

// openBrowser opens u with xdg-open, or says why it cannot.
func openBrowser(u string, stderr io.Writer) {
	xdg, err := exec.LookPath("xdg-open")
	if err != nil {
		fmt.Fprintln(stderr, "no xdg-open on this machine: open the URL above in a browser")
		return
	}
	cmd := exec.Command(xdg, u)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(stderr, "xdg-open: %v: open the URL above in a browser\n", err)
	}
}

// findJupyter is the Jupyter server a notebook without a command runs on
// this machine: jupyter-lab or jupyter-server on PATH, else a python3 that
// can import jupyterlab or jupyter_server; nil when there is none. Jupyter
// refuses to run as root without --allow-root; berth serve running as
// root passes it.
func findJupyter() []string {
	var found []string
	for _, exe := range []string{"jupyter-lab", "jupyter-server"} {
		if p, err := exec.LookPath(exe); err == nil {
			found = []string{p}
			break
		}
	}
	if found == nil {
		pythons := []string{"/usr/bin/python3"}
		if p, err := exec.LookPath("python3"); err == nil {
			pythons = append([]string{p}, pythons...)
		}
	search:
		for _, py := range pythons {
			for _, mod := range []string{"jupyterlab", "jupyter_server"} {
				if exec.Command(py, "-c", "import "+mod).Run() == nil {
					found = []string{py, "-m", mod}
					break search
				}
			}
		}
	}
	if found != nil && os.Geteuid() == 0 {
		found = append(found, "--allow-root")
	}
	return found
}

// notebookCommand is --notebook-command split into words (absolute where
// found on PATH), or the Jupyter found here.
func notebookCommand(flag string) ([]string, error) {
	if flag == "" {
		return findJupyter(), nil
	}
	words := strings.Fields(flag)
	p, err := exec.LookPath(words[0])
	if err != nil {
		return nil, usageError{fmt.Errorf("--notebook-command %s: %w", flag, err)}
	}
	words[0] = p
	return words, nil
}
