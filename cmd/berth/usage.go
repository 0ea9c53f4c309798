package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth/reconcile/history"
)

// formatCSV is usage's -o csv: the table of days, teams, clusters and
// flavors, for spreadsheets.
const formatCSV = "csv"

func newUsageCmd() *cobra.Command {
	var c clientOptions
	var output *outputFlag
	var from, to string
	var daily bool
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show the GPU-hours each team used over a range of days",
		Long: `usage asks the running 'berth serve' for the GPU-hours billed to each team
from --from to --to (UTC days, both included; default: this month so far).

A run is billed the GPUs it held (whole GPUs, fractions, MIG slices as their
share of a GPU) for the time its cluster measured it held them, split at
UTC midnight; runs that go on are billed every --history-bill-every of the
serve (a minute by default), runs that ended up to their end. With no serve
running on --state-dir, usage reads the history file it left there.

-o text is a table per team (per team and day with --daily), -o csv the
full table (day, team, cluster, flavor), -o json and -o yaml both, with
exact figures (milliGpuMillis: thousandths of a GPU times milliseconds).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"from": from, "to": to} {
				if v == "" {
					continue
				}
				if _, err := time.Parse(time.DateOnly, v); err != nil {
					return usageError{fmt.Errorf("--%s %q is not a day (YYYY-MM-DD)", k, v)}
				}
				q.Set(k, v)
			}
			var resp usageResponse
			if _, err := c.find(); err != nil && c.server == "" {
				// No serve runs on the state directory: read its history.
				if resp, err = usageFromFile(filepath.Join(c.stateDir, historyFile), q); err != nil {
					return err
				}
			} else {
				b, code, err := c.get("/api/usage?" + q.Encode())
				if err != nil {
					return err
				}
				if code == http.StatusBadRequest {
					return usageError{fmt.Errorf("%s", trimNL(b))}
				}
				if code != http.StatusOK {
					return fmt.Errorf("berth serve answered %d: %s", code, trimNL(b))
				}
				if err := json.Unmarshal(b, &resp); err != nil {
					return err
				}
			}
			switch output.value {
			case formatText:
				return writeUsageText(cmd.OutOrStdout(), resp, daily)
			case formatCSV:
				return writeUsageCSV(cmd.OutOrStdout(), resp)
			}
			return output.write(cmd.OutOrStdout(), resp)
		},
	}
	c.flags(cmd)
	cmd.Flags().StringVar(&from, "from", "", "first day (UTC, YYYY-MM-DD; default: the first of this month)")
	cmd.Flags().StringVar(&to, "to", "", "last day (UTC, YYYY-MM-DD; default: today)")
	cmd.Flags().BoolVar(&daily, "daily", false, "a row per team and day")
	output = addOutputFlag(cmd, formatText, formatCSV, formatJSON, formatYAML)
	return cmd
}

// usageFromFile reads GPU-hours from a history no serve holds open.
func usageFromFile(path string, q url.Values) (usageResponse, error) {
	if _, err := os.Stat(path); err != nil {
		return usageResponse{}, fmt.Errorf("no 'berth serve' is running and there is no history at %s (pass --server or --state-dir)", path)
	}
	from, to, err := usageRange(q, time.Now())
	if err != nil {
		return usageResponse{}, usageError{err}
	}
	st, err := history.OpenReadOnly(path)
	if err != nil {
		return usageResponse{}, err
	}
	defer st.Close()
	return (&server{hist: st}).usage(from, to)
}

// gpuHoursText writes GPU-hours with three decimals (3.6 GPU-seconds).
func gpuHoursText(h float64) string { return strconv.FormatFloat(h, 'f', 3, 64) }

// writeUsageText writes the GPU-hours as a table, through a buffer: the
// table writer writes each cell and run of padding on its own, a system
// call each on a terminal or a pipe.
func writeUsageText(w io.Writer, resp usageResponse, daily bool) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "GPU-hours from %s to %s (UTC)\n", resp.From, resp.To)
	if len(resp.Teams) == 0 {
		fmt.Fprintln(bw, "no GPU time was billed")
		return bw.Flush()
	}
	if err := writeUsageTable(bw, resp, daily); err != nil {
		return err
	}
	return bw.Flush()
}

// writeUsageTable writes a line per team, or per team and day when daily,
// and the total.
func writeUsageTable(w io.Writer, resp usageResponse, daily bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if daily {
		fmt.Fprintln(tw, "TEAM\tDAY\tGPU-HOURS")
	} else {
		fmt.Fprintln(tw, "TEAM\tGPU-HOURS\tDAYS USED")
	}
	var total int64
	for _, t := range resp.Teams {
		total += t.MilliGPUMillis
		if !daily {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", t.Team, gpuHoursText(t.GPUHours), len(t.Days))
			continue
		}
		for _, d := range t.Days {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Team, d.Day, gpuHoursText(d.GPUHours))
		}
	}
	if daily {
		fmt.Fprintf(tw, "total\t\t%s\n", gpuHoursText(history.GPUHours(total)))
	} else {
		fmt.Fprintf(tw, "total\t%s\n", gpuHoursText(history.GPUHours(total)))
	}
	return tw.Flush()
}

func writeUsageCSV(w io.Writer, resp usageResponse) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"day", "team", "cluster", "flavor", "gpu_hours", "milli_gpu_millis"})
	for _, r := range resp.Rows {
		cw.Write([]string{r.Day, r.Team, r.Cluster, r.Flavor, strconv.FormatFloat(r.GPUHours, 'f', -1, 64), strconv.FormatInt(r.MilliGPUMillis, 10)})
	}
	cw.Flush()
	return cw.Error()
}
