package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/berth-gpu/berth"
)

// versionInfo is what version prints.
type versionInfo struct {
	Berth    string `json:"berth"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	// Libraries are the versions of the libraries that matter, by module.
	Libraries map[string]string `json:"libraries,omitempty"`
}

func newVersionCmd() *cobra.Command {
	var output *outputFlag
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print berth's version and the versions of what it is built with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := versionInfo{Berth: berth.Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			var libs []string
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					switch d.Path {
					case "cuelang.org/go", "k8s.io/client-go", "github.com/go-git/go-git/v5":
						if v.Libraries == nil {
							v.Libraries = map[string]string{}
						}
						v.Libraries[d.Path] = d.Version
						libs = append(libs, d.Path)
					}
				}
			}
			w := cmd.OutOrStdout()
			if !output.text() {
				return output.write(w, v)
			}
			fmt.Fprintf(w, "berth %s\n", v.Berth)
			fmt.Fprintf(w, "go %s %s\n", v.Go, v.Platform)
			for _, l := range libs {
				fmt.Fprintf(w, "%s %s\n", l, v.Libraries[l])
			}
			return nil
		},
	}
	output = addOutputFlag(cmd, formatText, formatJSON, formatYAML)
	return cmd
}
