package sources

import (
	"fmt"
	"io/fs"
	"time"
)

// Kind says what a revision was read from.
type Kind int

const (
	// Commit is a Git commit: Hash is its hex SHA-1.
	Commit Kind = iota
	// WorkingDir is a directory on disk: Hash is the hex SHA-256 of its
	// content (see Dir), and there is no commit to report a status on.
	WorkingDir
)

// Revision is one state of a repository's tree.
type Revision struct {
	Kind Kind
	// Branch is the branch the revision was resolved from ("main"), a ref
	// that is not a branch in full ("refs/pull/7/head"), "" for a commit
	// asked for by hash, or "dir" for a working directory.
	Branch string
	// Hash is the commit's hex SHA-1, or a working directory's hex SHA-256.
	Hash string
	// Time is the commit time (the committer's), or for a working directory
	// the newest modification time of its files.
	Time time.Time
	// Subject is the first line of the commit message.
	Subject string
	// Author is "Name <email>" of the commit's author.
	Author string
	// Rewrite is set when the branch was force-pushed: the head this source
	// saw before is not an ancestor of this one. The revision is still good
	// to use; the rewrite is reported, not refused.
	Rewrite *Rewrite
	// FS is the revision's tree. It is safe for concurrent use and
	// implements fs.ReadDirFS, fs.ReadFileFS, fs.StatFS and fs.ReadLinkFS.
	FS fs.FS
}

// String names the revision: branch@sha1:<hash> for a commit on a branch,
// sha1:<hash> for a commit asked for by hash, dir@sha256:<hash> for a
// working directory.
func (r Revision) String() string {
	algo := "sha1"
	if r.Kind == WorkingDir {
		algo = "sha256"
	}
	if r.Branch == "" {
		return algo + ":" + r.Hash
	}
	return r.Branch + "@" + algo + ":" + r.Hash
}

// Rewrite describes a force-push: Previous was the branch head before, and
// is not an ancestor of the new head.
type Rewrite struct {
	// Previous is the hex SHA-1 of the head this source saw before.
	Previous string
	// Base is the newest commit both heads share (their merge base), or ""
	// when the histories share nothing.
	Base string
}

func (w Rewrite) String() string {
	if w.Base == "" {
		return fmt.Sprintf("history rewritten: previous head %s shares no history with the new head", w.Previous)
	}
	return fmt.Sprintf("history rewritten: previous head %s is not an ancestor of the new head (they diverge after %s)", w.Previous, w.Base)
}
