// Package cue turns a repository tree into a validated berth.Config.
//
// It is the only package that imports cuelang.org/go. It reads the tree
// from an fs.FS (a directory on disk or a Git revision's tree), checks every
// file before CUE sees it (size, UTF-8, symlinks that leave the tree), loads
// every directory with .cue files as a CUE package instance (imports resolve
// through the repository's cue.mod), unifies each instance's top-level
// fields with the embedded schema, merges the instances, and checks the
// references between them. It never writes into the tree.
//
// Every problem is an Error with the CUE path and every position CUE knows,
// and Load returns them all, sorted, as Errors. A Loader keeps the result of
// each instance keyed by the content of its files and imports, so
// re-validating after one changed file evaluates one instance.
package cue
