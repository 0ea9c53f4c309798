package sources

import (
	"fmt"
	"strings"
)

// The error classes below are what a caller decides on, with errors.As.
// Every one starts its text with the source ("source git URL") and the
// operation ("fetch main"), and none contains a credential.

// BranchNotFoundError means the tracked branch (or a requested ref) does
// not exist on the remote: it was deleted or never pushed, or the
// repository has no commits at all (Empty). The user must push the branch
// or change the configuration; retrying helps only once they have.
type BranchNotFoundError struct {
	Source string // the repository, without credentials
	Branch string // the branch or ref asked for
	// Empty is true when the repository has no refs at all.
	Empty bool
}

func (e *BranchNotFoundError) Error() string {
	if e.Empty {
		return fmt.Sprintf("source git %s: fetch %s: repository is empty (no commits have been pushed)", e.Source, e.Branch)
	}
	return fmt.Sprintf("source git %s: fetch %s: branch %s not found", e.Source, e.Branch, e.Branch)
}

// CommitNotFoundError means a commit asked for by hash is neither in the
// cache nor could be fetched (it does not exist, or the server refuses to
// serve commits by hash and no fetched ref reaches it).
type CommitNotFoundError struct {
	Source string
	Hash   string
	Err    error // why fetching it by hash failed, if it was tried
}

func (e *CommitNotFoundError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("source git %s: commit %s: not found (fetch a ref that reaches it first): %v", e.Source, e.Hash, e.Err)
	}
	return fmt.Sprintf("source git %s: commit %s: not found", e.Source, e.Hash)
}
func (e *CommitNotFoundError) Unwrap() error { return e.Err }

// RepositoryNotFoundError means the remote says there is no such
// repository. Hosts give this answer for private repositories when the
// credentials lack access, so the fix is the URL or the credentials.
type RepositoryNotFoundError struct {
	Source string
	Op     string
	Err    error
}

func (e *RepositoryNotFoundError) Error() string {
	// The cause adds nothing to say (go-git: "repository not found: ").
	return fmt.Sprintf("source git %s: %s: repository not found (check the URL, and that the credentials can read it)", e.Source, e.Op)
}
func (e *RepositoryNotFoundError) Unwrap() error { return e.Err }

// AuthError means the remote asked for credentials, refused the ones
// given, or (ssh) presented a host key that is not trusted. The user must
// fix the credentials or known_hosts; retrying does not help.
type AuthError struct {
	Source string
	Op     string
	Err    error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("source git %s: %s: authentication failed (check the token, or the ssh key and known_hosts): %v", e.Source, e.Op, e.Err)
}
func (e *AuthError) Unwrap() error { return e.Err }

// NetworkError is any other failure to talk to the remote: connection
// refused or reset, DNS, TLS, timeouts, a server error, a broken stream.
// It is transient: the caller retries with backoff.
type NetworkError struct {
	Source string
	Op     string
	Err    error
}

func (e *NetworkError) Error() string {
	return fmt.Sprintf("source git %s: %s: %v", e.Source, e.Op, e.Err)
}
func (e *NetworkError) Unwrap() error { return e.Err }

// sourceError is an unclassified failure (the local cache, a corrupt
// object): berth failed, not the user's commit.
type sourceError struct {
	Source string
	Op     string
	Err    error
}

func (e *sourceError) Error() string {
	return fmt.Sprintf("source git %s: %s: %v", e.Source, e.Op, e.Err)
}
func (e *sourceError) Unwrap() error { return e.Err }

// redactError hides secrets that a library might echo in its error text
// (a server's response body, a URL). It keeps the chain for errors.Is/As.
type redactError struct {
	err     error
	secrets []string
}

func (e *redactError) Error() string { return redact(e.err.Error(), e.secrets) }
func (e *redactError) Unwrap() error { return e.err }

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
