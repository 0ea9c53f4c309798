// Package berth holds the vocabulary every other package shares: the
// configuration a repository describes (Config and its parts), the observed
// state of a cluster (Snapshot), positions in the repository (Pos), and the
// embedded schema.cue that defines the repository format.
//
// It owns no behaviour beyond small helpers on these values: loading lives
// in cue/, scheduling and reconciling in reconcile/, rendering in status/.
package berth

import (
	_ "embed"
)

// Schema is schema.cue, the one definition of the repository format. It is
// embedded so the binary and the Go types cannot drift apart (a test in this
// package checks that every schema field has a Go field and back).
//
//go:embed schema.cue
var Schema []byte

// SchemaFile is the name errors give the schema's positions.
const SchemaFile = "schema.cue"

// Version is set at build time with -ldflags "-X github.com/berth-gpu/berth.Version=...".
var Version = "dev"
