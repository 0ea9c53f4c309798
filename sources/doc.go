// Package sources produces the revisions berth reconciles, and the signals
// that say when to look for a new one.
//
// It owns:
//   - Git: a remote repository (https with a token, ssh with a key) or a
//     local repository path, one tracked branch, fetched incrementally into
//     a bare clone in a cache directory the caller chooses. A revision's
//     tree is read straight from the object store as an fs.FS: nothing is
//     checked out and the user's work tree is never touched.
//   - Dir: a working directory as a revision named by a hash of its content.
//   - Watcher: fsnotify on a working directory (recursively) or on a local
//     repository's refs, debounced into one change per burst.
//   - Notifier: watcher changes, a polling ticker and explicit triggers (the
//     webhook receiver) merged into one coalesced stream of "check now".
//
// It does not own what a revision means: loading CUE is cue/, deciding what
// to do is reconcile/, and verifying and parsing webhooks belongs to the
// GitHub integration, which calls Notifier.Trigger and Git.Ref.
//
// Failures are classified by type, for errors.As: *BranchNotFoundError,
// *RepositoryNotFoundError, *AuthError, *CommitNotFoundError (the user must
// act) and *NetworkError (transient: retry). Any other error means berth
// or its cache failed (a disk error, a corrupt object), also retried. A
// force-push is not an error: the revision carries a Rewrite, and the
// source keeps working. Error text starts with the source ("source git
// https://host/repo: fetch main: ...") and never contains a token.
//
// A revision's FS reads the object store directly. Submodules (gitlinks)
// appear as empty directories: their commits live in other repositories,
// which are not fetched. Symlinks are symlinks (fs.ReadLinkFS); one that
// leads outside the tree does not resolve.
//
// Nothing here reads the environment or keeps global state; options structs
// carry every input, with defaults for the zero value.
package sources
