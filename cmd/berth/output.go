package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats of the -o flag.
const (
	formatText = "text" // for people
	formatJSON = "json"
	formatYAML = "yaml" // the JSON's fields, as YAML (sigs.k8s.io/yaml)
)

// outputFlag is the -o/--output flag every command that prints a result
// shares: one of the formats the command allows, checked when the flag is
// parsed and completed from the same list.
type outputFlag struct {
	value   string
	allowed []string
	// hint is added to the error of a value that looks like a file name
	// (snapshot's -o once named its file).
	hint string
}

// addOutputFlag registers -o on cmd with its default and the formats it
// allows (default first).
func addOutputFlag(cmd *cobra.Command, allowed ...string) *outputFlag {
	o := &outputFlag{value: allowed[0], allowed: allowed}
	cmd.Flags().VarP(o, "output", "o", "output format: "+o.choices())
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
	return o
}

func (o *outputFlag) String() string { return o.value }
func (o *outputFlag) Type() string   { return "format" }

func (o *outputFlag) Set(s string) error {
	if !slices.Contains(o.allowed, s) {
		if o.hint != "" && strings.ContainsAny(s, "./") {
			return fmt.Errorf("want %s (%s)", o.choices(), o.hint)
		}
		return fmt.Errorf("want %s", o.choices())
	}
	o.value = s
	return nil
}

func (o *outputFlag) choices() string {
	if len(o.allowed) == 1 {
		return o.allowed[0]
	}
	return strings.Join(o.allowed[:len(o.allowed)-1], ", ") + " or " + o.allowed[len(o.allowed)-1]
}

// text reports whether the output is for people.
func (o *outputFlag) text() bool { return o.value == formatText }

// write writes v as JSON (indented) or YAML; text() formats are the
// command's own.
func (o *outputFlag) write(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return o.writeJSON(w, append(b, '\n'))
}

// writeJSON writes a JSON document as it is, or as YAML.
func (o *outputFlag) writeJSON(w io.Writer, b []byte) error {
	if o.value == formatYAML {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return err
		}
		b = y
	}
	_, err := w.Write(b)
	return err
}
