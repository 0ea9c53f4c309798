package sources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Debounce is how long the watcher waits after an event for more
	// before it reports one Change (default 100 ms). Editors write a file
	// in several steps and tools write many files at once; a burst becomes
	// one Change.
	Debounce time.Duration
	// MaxDelay bounds how long a Change waits while events never stop
	// (default 1 s).
	MaxDelay time.Duration
	// Logger receives what the watcher does (default: discarded).
	Logger *slog.Logger
}

func (o WatchOptions) withDefaults() WatchOptions {
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Second
	}
	if o.MaxDelay < o.Debounce {
		o.MaxDelay = o.Debounce
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Change is one debounced burst of events.
type Change struct {
	// Paths are the changed paths relative to the watched root, slash
	// separated and sorted: at most maxChangePaths, More counts the rest.
	Paths []string
	More  int
	// Rescan is set when events were lost (the kernel's queue overflowed):
	// anything may have changed.
	Rescan bool
}

const maxChangePaths = 100

// Watcher reports changes under a directory through fsnotify. It watches
// directories, not files, so that a file replaced by rename (how vim, VS
// Code and most tools save atomically) is still seen, and adds every new
// directory as it appears. Symlinked directories are not followed.
type Watcher struct {
	root    string // the watched directory; for refs, the common git directory
	gitDir  string // a linked work tree's own git directory (its HEAD), else root
	opts    WatchOptions
	fw      *fsnotify.Watcher
	keep    func(rel string, isDir bool) bool // what is watched and reported
	watched map[string]bool                   // directories with a watch; owned by run after start
	out     chan Change
	ctx     context.Context
	cancel  context.CancelFunc
	started bool
	done    chan struct{}
}

// WatchDir watches the directory dir and every directory below it, except
// hidden ones (see Hidden; .git among them), until ctx is done or Close.
func WatchDir(ctx context.Context, dir string, opts WatchOptions) (*Watcher, error) {
	keep := func(rel string, isDir bool) bool {
		for _, part := range strings.Split(rel, "/") {
			if Hidden(part) {
				return false
			}
		}
		return true
	}
	// Watch the directory a symlinked root names: the walk below does not
	// follow links.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	w, err := newWatcher(ctx, root, opts, keep)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if err := w.addTree(root, nil); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	w.start()
	return w, nil
}

// WatchGitRefs watches a local repository's refs: the branches
// (refs/heads and the rest of refs/, recursively), packed-refs and HEAD,
// so a commit, a branch switch, a fetch or a pack-refs is reported at once.
// repo is the work tree or the git directory itself (a bare repository); a
// .git file (a linked work tree, a submodule) is followed, and the shared
// refs of linked work trees are watched through commondir. Repositories in
// the reftable format are not supported.
//
// The Change's Paths are relative to the git directory ("refs/heads/main").
func WatchGitRefs(ctx context.Context, repo string, opts WatchOptions) (*Watcher, error) {
	gitDir, commonDir, err := findGitDir(repo)
	if err != nil {
		return nil, fmt.Errorf("watch git refs %s: %w", repo, err)
	}
	keep := func(rel string, isDir bool) bool {
		if strings.HasSuffix(rel, ".lock") {
			return false // written and renamed into place; the rename is reported
		}
		if isDir {
			return rel == "refs" || strings.HasPrefix(rel, "refs/")
		}
		return rel == "HEAD" || rel == "packed-refs" || strings.HasPrefix(rel, "refs/")
	}
	w, err := newWatcher(ctx, commonDir, opts, keep)
	if err != nil {
		return nil, fmt.Errorf("watch git refs %s: %w", repo, err)
	}
	w.gitDir = gitDir
	// A linked work tree's HEAD lives in its own git directory; its
	// branches in the common one.
	if gitDir != commonDir {
		if err := w.fw.Add(gitDir); err != nil {
			w.Close()
			return nil, fmt.Errorf("watch git refs %s: %w", repo, err)
		}
	}
	if err := w.fw.Add(commonDir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch git refs %s: %w", repo, err)
	}
	if err := w.addTree(filepath.Join(commonDir, "refs"), nil); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch git refs %s: %w", repo, err)
	}
	w.start()
	return w, nil
}

// findGitDir returns a repository's git directory and the common directory
// that holds its refs.
func findGitDir(repo string) (gitDir, commonDir string, err error) {
	gitDir = repo
	dotGit := filepath.Join(repo, ".git")
	fi, err := os.Stat(dotGit)
	switch {
	case err == nil && fi.IsDir():
		gitDir = dotGit
	case err == nil:
		b, err := os.ReadFile(dotGit)
		if err != nil {
			return "", "", err
		}
		line, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
		if !ok {
			return "", "", fmt.Errorf("%s: not a gitdir file", dotGit)
		}
		gitDir = strings.TrimSpace(line)
		if !filepath.IsAbs(gitDir) {
			gitDir = filepath.Join(repo, gitDir)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", err
	}
	if _, err := os.Stat(filepath.Join(gitDir, "HEAD")); err != nil {
		return "", "", fmt.Errorf("not a git repository (no %s)", filepath.Join(gitDir, "HEAD"))
	}
	commonDir = gitDir
	if b, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		commonDir = strings.TrimSpace(string(b))
		if !filepath.IsAbs(commonDir) {
			commonDir = filepath.Join(gitDir, commonDir)
		}
	}
	if _, err := os.Stat(filepath.Join(commonDir, "refs")); err != nil {
		return "", "", fmt.Errorf("not a git repository (no %s; reftable is not supported)", filepath.Join(commonDir, "refs"))
	}
	return filepath.Clean(gitDir), filepath.Clean(commonDir), nil
}

func newWatcher(ctx context.Context, root string, opts WatchOptions, keep func(string, bool) bool) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	root = filepath.Clean(root)
	ctx, cancel := context.WithCancel(ctx)
	return &Watcher{
		root:    root,
		gitDir:  root,
		opts:    opts.withDefaults(),
		fw:      fw,
		keep:    keep,
		watched: map[string]bool{},
		out:     make(chan Change),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}, nil
}

func (w *Watcher) start() {
	w.started = true
	go w.run(w.ctx)
}

// Changes delivers one Change per burst of events. A Change the receiver
// has not taken yet absorbs later events, so a slow receiver gets fewer,
// larger Changes. The channel is closed when the watcher stops.
func (w *Watcher) Changes() <-chan Change { return w.out }

// Close stops the watcher and waits for it to finish.
func (w *Watcher) Close() error {
	w.cancel()
	if !w.started {
		// A constructor failed before run took over the fsnotify watcher.
		return w.fw.Close()
	}
	<-w.done
	return nil
}

// rel names an event's path for Change and keep. ok is false for paths
// outside the watched directories.
func (w *Watcher) rel(name string) (string, bool) {
	if w.gitDir != w.root && filepath.Dir(name) == w.gitDir {
		return filepath.Base(name), true
	}
	rel, err := filepath.Rel(w.root, name)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// addTree watches dir and the directories below it that keep accepts. The
// files found are added to found, so a file written into a new directory
// before its watch was in place is still reported.
func (w *Watcher) addTree(dir string, found map[string]bool) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // gone while walking
			}
			return err
		}
		rel, ok := w.rel(p)
		if p == w.root {
			rel, ok = ".", true
		}
		if !ok {
			return nil
		}
		if !e.IsDir() {
			if found != nil && w.keep(rel, false) {
				found[rel] = true
			}
			return nil
		}
		if p != w.root && !w.keep(rel, true) {
			return filepath.SkipDir
		}
		if w.watched[p] {
			return nil
		}
		if err := w.fw.Add(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return fmt.Errorf("add %s: %w", p, err)
		}
		w.watched[p] = true
		if found != nil && p != w.root {
			found[rel] = true
		}
		return nil
	})
}

// forget drops the watches on a directory that was removed or renamed
// away, and on everything below it. A directory renamed within the tree is
// watched again under its new name when its Create arrives.
func (w *Watcher) forget(p string) {
	if !w.watched[p] {
		return
	}
	prefix := p + string(filepath.Separator)
	for d := range w.watched {
		if d == p || strings.HasPrefix(d, prefix) {
			w.fw.Remove(d) // fails harmlessly when the kernel dropped it already
			delete(w.watched, d)
		}
	}
}

// run collects events into a pending Change and delivers it once no event
// came for Debounce, or MaxDelay after the first.
func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.out)
	defer w.fw.Close()
	log := w.opts.Logger.With("watch", w.root)

	pending := map[string]bool{}
	rescan := false
	var first time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	ready := false // the debounce fired: deliver when the receiver is ready

	arm := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		if !ready {
			timer.Reset(min(w.opts.Debounce, max(0, first.Add(w.opts.MaxDelay).Sub(now))))
		}
	}
	for {
		var out chan<- Change
		var c Change
		if ready {
			out, c = w.out, makeChange(pending, rescan)
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			if w.handle(ev, pending, log) {
				arm()
			}
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				log.Warn("events lost; rescanning", "err", err)
				rescan = true
				if err := w.addTree(w.root, nil); err != nil {
					log.Warn("rescan", "err", err)
				}
				arm()
				continue
			}
			log.Warn("watch error", "err", err)
		case <-timer.C:
			ready = true
		case out <- c:
			clear(pending)
			rescan, ready, first = false, false, time.Time{}
		}
	}
}

// handle records one event; it reports whether the event counts.
func (w *Watcher) handle(ev fsnotify.Event, pending map[string]bool, log *slog.Logger) bool {
	rel, ok := w.rel(ev.Name)
	if !ok || ev.Op == fsnotify.Chmod {
		// A bare chmod is touch or an editor resetting modes: the content
		// is what matters.
		return false
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.forget(ev.Name)
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if !w.keep(rel, true) {
				return false
			}
			if err := w.addTree(ev.Name, pending); err != nil {
				log.Warn("watch new directory", "dir", ev.Name, "err", err)
			}
			pending[rel] = true
			return true
		}
	}
	if !w.keep(rel, false) {
		return false
	}
	pending[rel] = true
	return true
}

func makeChange(pending map[string]bool, rescan bool) Change {
	paths := make([]string, 0, len(pending))
	for p := range pending {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	c := Change{Paths: paths, Rescan: rescan}
	if len(paths) > maxChangePaths {
		c.Paths, c.More = paths[:maxChangePaths], len(paths)-maxChangePaths
	}
	return c
}
