// Package cue turns a repository tree into a validated berth.Config.
//
// It is the only package that imports cuelang.org/go. It reads the tree
// from an fs.FS (a directory on disk or a Git revision's tree), checks every
// file before CUE sees it (size, UTF-8, a package clause, symlinks that
// leave the tree), loads every directory with .cue files as a CUE package
// instance (imports resolve through the repository's cue.mod), unifies each
// instance's top-level fields with the embedded schema object by object, so
// one bad workload does not hide the rest, merges the instances, and checks
// the references between them. It never writes into the tree.
//
// Every problem is an Error with the CUE path (empty when a whole file is
// the problem) and every position in the repository CUE knows, and Load
// returns them all, sorted, as Errors: the commit is wrong. Any other error
// means berth failed. Evaluation is bounded in CPU time and heap, so a
// configuration that would run away comes back as Errors pointing at its
// comprehensions; the runaway evaluation itself cannot be stopped and is
// abandoned, so a long-running process should load in a child process.
//
// A Loader keeps the result of each instance keyed by the content of its
// files and imports, so re-validating after one changed file evaluates one
// instance. Instances are evaluated in parallel, each batch in a fresh CUE
// context.
package cue
