package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// GitOptions configure a Git source. URL and CacheDir are required.
type GitOptions struct {
	// URL is the repository: https://host/owner/repo, ssh://git@host/repo,
	// git@host:owner/repo, file:///abs/path, or an absolute path to a local
	// repository (bare or not). Credentials in an https URL
	// (https://user:token@host/...) are taken out of the URL and used as
	// Auth.Token; they are never written to the cache or shown in errors.
	URL string
	// Branch is the tracked branch (default "main").
	Branch string
	// CacheDir holds the bare clones. This source's clone is a
	// subdirectory named after the URL and branch (see Git.Dir); it is
	// created on first use and reused across restarts, so only new objects
	// are fetched. One process at a time may use a clone (a lock file
	// enforces it).
	CacheDir string
	// Auth holds the credentials, if the remote needs any.
	Auth GitAuth
	// ObjectCacheBytes bounds the memory kept for decoded objects read
	// through revisions' FS (default 32 MiB).
	ObjectCacheBytes int
	// Logger receives what the source does (default: discarded).
	Logger *slog.Logger
}

// GitAuth are the credentials for a remote.
//
// https: Token (or TokenFunc, for tokens that expire, such as a GitHub App
// installation token) is sent as the password of HTTP basic auth, with
// Username (default "x-access-token", which GitHub, GitLab and Gitea
// accept with a token).
//
// ssh: SSHKeyFile is a private key in OpenSSH or PEM form. The server's
// host key is checked against KnownHostsFile (OpenSSH known_hosts format);
// nothing is read from ~/.ssh or the environment, so one of KnownHostsFile
// or InsecureIgnoreHostKey is required. The ssh user is the URL's
// (git@...), else SSHUser, else "git". ssh-agent is not used.
type GitAuth struct {
	Username string
	Token    string
	// TokenFunc, when set, is called before every fetch for the token.
	// Its failure is a NetworkError (retried): the service minting tokens
	// is down.
	TokenFunc func(ctx context.Context) (string, error)

	SSHKeyFile            string
	SSHKeyPassphrase      string
	SSHUser               string
	KnownHostsFile        string
	InsecureIgnoreHostKey bool

	// CABundle is PEM certificates to trust for https, in addition to the
	// system's.
	CABundle []byte
}

// Git is a Git repository tracked on one branch. Its methods are safe for
// concurrent use; fetches run one at a time, and reading revisions' trees
// never waits for a fetch's network transfer.
//
// The clone holds the full history of what it fetched: no shallow
// fetches. Telling a force-push from a fast-forward needs the ancestry,
// and go-git's incremental fetches into a shallow clone are fragile. The
// first fetch of a long history costs once; every later fetch sends only
// the objects the clone lacks (git's have/want negotiation), and a fetch
// that finds nothing new sends only the ref advertisement. Tags are not
// fetched. Packs accumulate one per fetch that brought something; nothing
// here repacks them yet, nor drops the refs Ref and At leave under
// refs/berth/.
type Git struct {
	log    *slog.Logger
	remote remote
	branch string
	dir    string
	unlock func()

	// fetchMu serialises fetches and everything that reads or writes refs
	// through repo.
	fetchMu sync.Mutex
	repo    *git.Repository
	auth    authSource
	closed  bool

	// objects reads the clone for revisions. It is a second storage on the
	// same directory so reads do not wait for a fetch: go-git's storage is
	// not safe for concurrent use, and new packs become visible to objects
	// only after a fetch completes (see objectStore.refresh).
	objects *objectStore

	// lastHead and lastRewrite remember the rewrite that produced the
	// current head, so every Latest of that head reports it.
	lastHead    plumbing.Hash
	lastRewrite *Rewrite
}

const remoteName = "origin"

// NewGit opens (or creates) the source's bare clone in opts.CacheDir. It
// does not touch the network: the first Latest fetches.
func NewGit(opts GitOptions) (*Git, error) {
	if opts.Branch == "" {
		opts.Branch = "main"
	}
	if opts.ObjectCacheBytes <= 0 {
		opts.ObjectCacheBytes = 32 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rem, err := parseRemote(opts.URL, &opts.Auth)
	if err != nil {
		return nil, fmt.Errorf("source git %s: %w", rem.display, err)
	}
	if plumbing.NewBranchReferenceName(opts.Branch).Validate() != nil || strings.ContainsAny(opts.Branch, "*:") {
		return nil, fmt.Errorf("source git %s: branch %q is not a valid branch name", rem.display, opts.Branch)
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("source git %s: no cache directory given", rem.display)
	}
	auth, err := newAuthSource(rem, opts.Auth)
	if err != nil {
		return nil, fmt.Errorf("source git %s: %w", rem.display, err)
	}
	g := &Git{
		log:    log.With("source", rem.display, "branch", opts.Branch),
		remote: rem,
		branch: opts.Branch,
		dir:    filepath.Join(opts.CacheDir, cacheName(rem.url, opts.Branch)),
		auth:   auth,
	}
	if err := g.open(opts.ObjectCacheBytes); err != nil {
		return nil, fmt.Errorf("source git %s: cache %s: %w", rem.display, g.dir, err)
	}
	return g, nil
}

// cacheName is the clone's directory name: readable (host and path) and
// unique (a hash of the URL and branch).
func cacheName(url, branch string) string {
	sum := sha256.Sum256([]byte(url + "\x00" + branch))
	base := url
	if i := strings.Index(base, "://"); i >= 0 {
		base = base[i+3:]
	}
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-.")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return name + "-" + hex.EncodeToString(sum[:6]) + ".git"
}

func (g *Git) open(objectCache int) error {
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(g.dir + ".lock")
	if err != nil {
		return err
	}
	// go-git writes a ref file in place: a berth killed in the middle
	// leaves it empty, and every later fetch fails on it. An empty ref is
	// never valid; drop it, and the next fetch writes it again.
	if err := dropEmptyRefs(g.dir); err != nil {
		unlock()
		return err
	}
	// The fetching side keeps a small cache: it decodes objects only to
	// resolve deltas and compute what it has.
	st := filesystem.NewStorage(osfs.New(g.dir), cache.NewObjectLRU(8<<20))
	repo, err := git.Open(st, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		// A new cache, or one whose creation was interrupted before the
		// config was written: start it again.
		if err := os.RemoveAll(g.dir); err != nil {
			unlock()
			return err
		}
		st = filesystem.NewStorage(osfs.New(g.dir), cache.NewObjectLRU(8<<20))
		repo, err = git.Init(st, nil)
	}
	if err != nil {
		unlock()
		return err
	}
	cfg, err := repo.Config()
	if err != nil {
		unlock()
		return err
	}
	want := &config.RemoteConfig{Name: remoteName, URLs: []string{g.remote.url}}
	if rc, ok := cfg.Remotes[remoteName]; !ok || len(rc.URLs) != 1 || rc.URLs[0] != g.remote.url {
		cfg.Remotes[remoteName] = want
		if err := repo.SetConfig(cfg); err != nil {
			unlock()
			return err
		}
	}
	g.repo = repo
	g.unlock = unlock
	g.objects = newObjectStore(g.dir, objectCache)
	if err := g.objects.refresh(); err != nil {
		unlock()
		return err
	}
	return nil
}

// dropEmptyRefs removes the empty ref files of the cache in dir (and an
// empty HEAD is written again as the init would).
func dropEmptyRefs(dir string) error {
	err := filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil && info.Size() == 0 {
				return os.Remove(p)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("git cache %s: %w", dir, err)
	}
	return nil
}

// Close releases the clone's lock. Revisions read after Close fail.
func (g *Git) Close() error {
	g.fetchMu.Lock()
	defer g.fetchMu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	if c, ok := g.repo.Storer.(io.Closer); ok {
		c.Close()
	}
	err := g.objects.close()
	g.unlock()
	return err
}

var errClosed = errors.New("source is closed")

// String is "source git URL", without credentials.
func (g *Git) String() string { return "source git " + g.remote.display }

// Dir is the bare clone's directory.
func (g *Git) Dir() string { return g.dir }

// LocalPath is the repository's directory when the URL is a local path
// (for WatchGitRefs), else "".
func (g *Git) LocalPath() string { return g.remote.local }

// Branch is the tracked branch.
func (g *Git) Branch() string { return g.branch }

// Latest fetches the tracked branch and returns its head. When the head is
// not a descendant of the head the previous Latest returned (in this
// process or, through the clone, an earlier one), the revision's Rewrite
// says so.
func (g *Git) Latest(ctx context.Context) (Revision, error) {
	g.fetchMu.Lock()
	defer g.fetchMu.Unlock()
	if g.closed {
		return Revision{}, &sourceError{g.remote.display, "fetch " + g.branch, errClosed}
	}

	tracking := plumbing.NewRemoteReferenceName(remoteName, g.branch)
	op := "fetch " + g.branch
	spec := config.RefSpec("+" + plumbing.NewBranchReferenceName(g.branch).String() + ":" + tracking.String())
	if err := g.fetch(ctx, op, g.branch, spec); err != nil {
		return Revision{}, err
	}
	head, err := g.resolve(tracking)
	if err != nil {
		return Revision{}, &sourceError{g.remote.display, op, err}
	}
	if err := g.objects.refresh(); err != nil {
		return Revision{}, &sourceError{g.remote.display, op, err}
	}

	// The head the previous Latest returned is kept in a ref of its own,
	// not read from the tracking ref: At and Ref may fetch the branch too.
	seenRef := plumbing.ReferenceName("refs/berth/seen/" + g.branch)
	prev, err := g.resolve(seenRef)
	if err != nil && !errors.Is(err, plumbing.ErrReferenceNotFound) {
		return Revision{}, &sourceError{g.remote.display, op, err}
	}
	if !prev.IsZero() && prev != head {
		g.lastHead, g.lastRewrite = head, g.detectRewrite(prev, head)
		if g.lastRewrite != nil {
			g.log.Warn("branch history rewritten", "previous", prev.String(), "head", head.String(), "base", g.lastRewrite.Base)
		} else {
			g.log.Info("branch moved", "previous", prev.String(), "head", head.String())
		}
	}
	rev, err := g.revision(op, g.branch, head)
	if err != nil {
		return Revision{}, err
	}
	if head == g.lastHead {
		rev.Rewrite = g.lastRewrite
	}
	if prev != head {
		if err := g.repo.Storer.SetReference(plumbing.NewHashReference(seenRef, head)); err != nil {
			return Revision{}, &sourceError{g.remote.display, op, err}
		}
	}
	return rev, nil
}

// detectRewrite reports whether prev is not an ancestor of head. When the
// previous head's objects are gone (the cache was replaced), it cannot
// tell, and says nothing.
func (g *Git) detectRewrite(prev, head plumbing.Hash) *Rewrite {
	var rw *Rewrite
	err := g.objects.do(func(s *filesystem.Storage) error {
		pc, err := object.GetCommit(s, prev)
		if err != nil {
			return err
		}
		hc, err := object.GetCommit(s, head)
		if err != nil {
			return err
		}
		ok, err := pc.IsAncestor(hc)
		if err != nil || ok {
			return err
		}
		rw = &Rewrite{Previous: prev.String()}
		bases, err := pc.MergeBase(hc)
		if err != nil {
			return err
		}
		if len(bases) > 0 {
			rw.Base = bases[0].Hash.String()
		}
		return nil
	})
	if err != nil {
		g.log.Warn("cannot tell whether history was rewritten", "previous", prev.String(), "head", head.String(), "err", err)
	}
	return rw
}

// At returns the commit with the given hex SHA-1 (a pull request's base or
// head). A commit not yet in the cache is fetched by hash, which GitHub,
// GitLab and git-http-backend allow for commits reachable from a ref;
// otherwise fetch the ref that holds it with Ref first.
func (g *Git) At(ctx context.Context, hash string) (Revision, error) {
	h, ok := parseHash(hash)
	if !ok {
		return Revision{}, fmt.Errorf("source git %s: commit %q: not a full hex SHA-1", g.remote.display, hash)
	}
	op := "commit " + hash
	if g.objects.hasCommit(h) {
		return g.revision(op, "", h)
	}
	g.fetchMu.Lock()
	defer g.fetchMu.Unlock()
	if g.closed {
		return Revision{}, &sourceError{g.remote.display, op, errClosed}
	}
	spec := config.RefSpec(hash + ":refs/berth/commit")
	err := g.fetch(ctx, "fetch "+hash, hash, spec)
	if err != nil {
		// The server refused the commit, or the fetch failed on its way.
		// Servers say which only in text (an "ERR not our ref" packet, or a
		// process that exits before it is read), so ask the remote for its
		// refs: if that works, the remote is up and the credentials good,
		// and the commit is what is missing.
		if perr := g.probe(ctx, "fetch "+hash); perr != nil {
			return Revision{}, perr
		}
		var ne *NetworkError
		if errors.As(err, &ne) {
			err = ne.Err
		}
		return Revision{}, &CommitNotFoundError{Source: g.remote.display, Hash: hash, Err: err}
	}
	if err := g.objects.refresh(); err != nil {
		return Revision{}, &sourceError{g.remote.display, op, err}
	}
	if !g.objects.hasCommit(h) {
		return Revision{}, &CommitNotFoundError{Source: g.remote.display, Hash: hash}
	}
	return g.revision(op, "", h)
}

// Ref fetches any ref of the remote (refs/pull/7/head, refs/tags/v1, or a
// branch name) into the cache and returns the commit it points to. The
// revision's Branch is the ref's short name for a branch ("feature"), its
// full name otherwise.
func (g *Git) Ref(ctx context.Context, ref string) (Revision, error) {
	name := plumbing.ReferenceName(ref)
	if !strings.HasPrefix(ref, "refs/") {
		name = plumbing.NewBranchReferenceName(ref)
	}
	if err := name.Validate(); err != nil || strings.ContainsAny(ref, "*:") {
		return Revision{}, fmt.Errorf("source git %s: ref %q is not a valid ref name", g.remote.display, ref)
	}
	g.fetchMu.Lock()
	defer g.fetchMu.Unlock()
	if g.closed {
		return Revision{}, &sourceError{g.remote.display, "fetch " + ref, errClosed}
	}
	local := plumbing.ReferenceName("refs/berth/fetched/" + strings.TrimPrefix(name.String(), "refs/"))
	label := name.String()
	if name.IsBranch() {
		label = name.Short()
	}
	op := "fetch " + label
	if err := g.fetch(ctx, op, label, config.RefSpec("+"+name.String()+":"+local.String())); err != nil {
		return Revision{}, err
	}
	h, err := g.resolve(local)
	if err != nil {
		return Revision{}, &sourceError{g.remote.display, op, err}
	}
	if err := g.objects.refresh(); err != nil {
		return Revision{}, &sourceError{g.remote.display, op, err}
	}
	return g.revision(op, label, h)
}

// fetch runs one fetch and classifies its failure. branch names what was
// asked for, for BranchNotFoundError.
func (g *Git) fetch(ctx context.Context, op, branch string, spec config.RefSpec) error {
	auth, secrets, err := g.auth.method(ctx)
	if err != nil {
		// TokenFunc failed: the service that mints tokens is down.
		return &NetworkError{g.remote.display, op, &redactError{err, secrets}}
	}
	err = g.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       auth,
		Tags:       git.NoTags,
		CABundle:   g.auth.caBundle,
	})
	switch {
	case err == nil:
		g.log.Debug("fetched", "ref", branch)
		return nil
	case errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil
	}
	return g.classify(ctx, op, branch, &redactError{err, secrets})
}

// probe lists the remote's refs, to tell a remote that is down or refuses
// the credentials from one that lacks what was asked for.
func (g *Git) probe(ctx context.Context, op string) error {
	auth, secrets, err := g.auth.method(ctx)
	if err != nil {
		// TokenFunc failed: the service that mints tokens is down.
		return &NetworkError{g.remote.display, op, &redactError{err, secrets}}
	}
	rem, err := g.repo.Remote(remoteName)
	if err != nil {
		return &sourceError{g.remote.display, op, err}
	}
	_, err = rem.ListContext(ctx, &git.ListOptions{Auth: auth, CABundle: g.auth.caBundle})
	if err == nil || errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil
	}
	return g.classify(ctx, op, "", &redactError{err, secrets})
}

// classify turns a transport failure into one of the error classes.
func (g *Git) classify(ctx context.Context, op, branch string, err error) error {
	if ctx.Err() != nil {
		return &sourceError{g.remote.display, op, ctx.Err()}
	}
	var nomatch git.NoMatchingRefSpecError
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return &BranchNotFoundError{Source: g.remote.display, Branch: branch, Empty: true}
	case errors.As(err, &nomatch):
		return &BranchNotFoundError{Source: g.remote.display, Branch: branch}
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return &RepositoryNotFoundError{g.remote.display, op, err}
	case isAuthFailure(err):
		return &AuthError{g.remote.display, op, err}
	}
	return &NetworkError{g.remote.display, op, err}
}

func (g *Git) resolve(name plumbing.ReferenceName) (plumbing.Hash, error) {
	ref, err := g.repo.Storer.Reference(name)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// revision reads a commit's metadata and makes its FS.
func (g *Git) revision(op, branch string, h plumbing.Hash) (Revision, error) {
	var rev Revision
	err := g.objects.do(func(s *filesystem.Storage) error {
		c, err := object.GetCommit(s, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			// An annotated tag (Ref of refs/tags/...): its commit.
			if t, terr := object.GetTag(s, h); terr == nil {
				c, err = t.Commit()
			}
		}
		if err != nil {
			return err
		}
		h = c.Hash
		subject, _, _ := strings.Cut(strings.TrimLeft(c.Message, "\n"), "\n")
		rev = Revision{
			Kind:    Commit,
			Branch:  branch,
			Hash:    h.String(),
			Time:    c.Committer.When,
			Subject: strings.TrimSpace(subject),
			Author:  fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
			FS:      newTreeFS(g.objects, c.TreeHash, c.Committer.When),
		}
		return nil
	})
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return Revision{}, &CommitNotFoundError{Source: g.remote.display, Hash: h.String()}
	}
	if err != nil {
		return Revision{}, &sourceError{g.remote.display, op, err}
	}
	return rev, nil
}

func parseHash(s string) (plumbing.Hash, bool) {
	if len(s) != 40 {
		return plumbing.ZeroHash, false
	}
	if _, err := hex.DecodeString(s); err != nil {
		return plumbing.ZeroHash, false
	}
	return plumbing.NewHash(strings.ToLower(s)), true
}

// objectStore is the read side of a clone: one go-git storage behind a
// mutex, shared by every revision's FS.
//
// The storage is opened for exclusive access, so go-git lists packs and
// loose objects once instead of on every lookup, and keeps pack files
// open. The price is that it does not see what a fetch adds: refresh
// replaces it after each fetch, keeping the decoded-object cache.
type objectStore struct {
	dir   string
	cache cache.Object

	mu sync.Mutex
	st *filesystem.Storage // nil once closed
}

// largeObject is the size above which a blob is streamed from its pack
// instead of read into memory when opened.
const largeObject = 1 << 20

func newObjectStore(dir string, cacheBytes int) *objectStore {
	return &objectStore{dir: dir, cache: cache.NewObjectLRU(cache.FileSize(cacheBytes))}
}

func (o *objectStore) do(f func(*filesystem.Storage) error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.st == nil {
		return errClosed
	}
	return f(o.st)
}

// refresh opens the storage again, to see the packs a fetch wrote, and
// loads their indexes at once: the caller holds the fetch lock, so no
// fetch is writing a pack that a lazy load could see half written.
func (o *objectStore) refresh() error {
	st := filesystem.NewStorageWithOptions(osfs.New(o.dir), o.cache, filesystem.Options{
		ExclusiveAccess:      true,
		MaxOpenDescriptors:   16,
		LargeObjectThreshold: largeObject,
	})
	if err := st.HasEncodedObject(plumbing.ZeroHash); err != nil && !errors.Is(err, plumbing.ErrObjectNotFound) {
		st.Close()
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	old := o.st
	o.st = st
	if old != nil {
		return old.Close()
	}
	return nil
}

func (o *objectStore) hasCommit(h plumbing.Hash) bool {
	return o.do(func(s *filesystem.Storage) error {
		_, err := s.EncodedObject(plumbing.CommitObject, h)
		return err
	}) == nil
}

func (o *objectStore) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.st == nil {
		return nil
	}
	err := o.st.Close()
	o.st = nil
	return err
}

// lockedReader reads a large blob streamed from a pack, holding the store
// lock for each read because the stream shares go-git's pack index.
type lockedReader struct {
	o *objectStore
	r io.ReadCloser
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.o.mu.Lock()
	defer l.o.mu.Unlock()
	return l.r.Read(p)
}

func (l *lockedReader) Close() error {
	l.o.mu.Lock()
	defer l.o.mu.Unlock()
	return l.r.Close()
}
