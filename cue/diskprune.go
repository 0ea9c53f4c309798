package cue

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Pruning keeps the evaluation cache from growing without bound: every
// berth build writes its entries in a directory of its own (a developer's
// every rebuild is a new version), and every revision of a repository
// adds the entries of the packages it changed.
//
// A prune goes by names, sizes and modification times only (a hit renews
// its entry's time, see lookup), never by what an entry holds, so a
// corrupt entry is pruned like any other and nothing is read to prune.
// It removes, in this order:
//   - temporary files older than tempIdle (a writer that died);
//   - another version's entries unused for otherVersionIdle (the
//     version berth was before an upgrade, a rebuilt developer build, the
//     layout of an earlier format);
//   - any entry unused for Options.CacheMaxAge;
//   - the entries used longest ago, while the cache is larger than
//     Options.CacheMaxSize, down to nine tenths of it.
//
// It touches only what berth names in the directory (v-* directories and
// the two-hex-digit directories of format 2), so a cache directory that
// holds something else too (BERTH_CACHE_DIR set to a shared path) loses
// nothing else.
//
// Processes may prune and use one directory at once. A reader that opened
// an entry reads it whole even if it is removed meanwhile; one that finds
// it gone evaluates again and writes it back; a writer whose directory was
// removed under it makes it again (writeEntry). Two processes pruning at
// once remove what either chose; the worst a race does is remove an entry
// that was just used, which costs an evaluation, never a wrong result.

// pruneEvery is how often a cache directory is pruned: by the first load
// that finds its last prune (the pruneStamp file's time) older than this.
const pruneEvery = time.Hour

// pruneStamp is the file whose modification time says when the directory
// was last pruned.
const pruneStamp = "pruned"

const (
	otherVersionIdle = 24 * time.Hour
	tempIdle         = time.Hour
)

// pruned is what a prune removed.
type pruned struct {
	Entries int   // entries and temporary files removed
	Bytes   int64 // their size
	Kept    int64 // the size of what is left
}

// maybePrune prunes the cache when no process has for pruneEvery. The
// stamp is renewed first, so processes that start at once mostly leave it
// to one of them.
func (c *diskCache) maybePrune(now time.Time) {
	stamp := filepath.Join(c.dir, pruneStamp)
	if fi, err := os.Stat(stamp); err == nil && now.Sub(fi.ModTime()) < pruneEvery {
		return
	}
	c.mu.Lock()
	ro := c.readOnly
	c.mu.Unlock()
	if ro {
		return
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return // not ours to prune, or nothing cached yet
	}
	os.Chtimes(stamp, now, now)
	c.prune(now)
}

// cacheFile is a file of the cache a prune may remove.
type cacheFile struct {
	path string
	size int64
	used time.Time
	ours bool // this version's
	temp bool
}

// prune removes what the rules above say, as of now.
func (c *diskCache) prune(now time.Time) pruned {
	files, dirs := c.scan(now)

	var out pruned
	remove := func(f cacheFile) {
		if err := os.Remove(f.path); err == nil || os.IsNotExist(err) {
			out.Entries++
			out.Bytes += f.size
		}
	}
	keep := files[:0]
	for _, f := range files {
		age := now.Sub(f.used)
		switch {
		case f.temp && age > tempIdle,
			!f.temp && !f.ours && age > otherVersionIdle,
			!f.temp && age > c.maxAge:
			remove(f)
		default:
			keep = append(keep, f)
		}
	}
	total := int64(0)
	for _, f := range keep {
		total += f.size
	}
	if total > c.maxSize {
		// Least recently used first; a file being written is left alone.
		slices.SortFunc(keep, func(a, b cacheFile) int { return cmp.Compare(a.used.UnixNano(), b.used.UnixNano()) })
		for _, f := range keep {
			if total <= c.maxSize/10*9 {
				break
			}
			if !f.temp {
				remove(f)
				total -= f.size
			}
		}
	}
	out.Kept = total
	for _, d := range dirs {
		os.Remove(d) // only when empty
	}
	return out
}

// scan lists the cache's entry files, and the directories of other
// versions that no process changed for otherVersionIdle, as found before
// anything is removed: they are removed once empty. A directory a
// process is writing in has just changed (the writer's temporary file),
// so it stays.
func (c *diskCache) scan(now time.Time) (files []cacheFile, dirs []string) {
	idle := func(dir string) bool {
		fi, err := os.Stat(dir)
		return err == nil && now.Sub(fi.ModTime()) > otherVersionIdle
	}
	top, _ := os.ReadDir(c.dir)
	for _, d := range top {
		name := d.Name()
		switch {
		case d.IsDir() && strings.HasPrefix(name, versionPrefix):
			ours := name == c.sub
			sub := filepath.Join(c.dir, name)
			if !ours && idle(sub) {
				dirs = append(dirs, sub)
			}
			fan, _ := os.ReadDir(sub)
			for _, f := range fan {
				if f.IsDir() && isFanOut(f.Name()) {
					files = appendFiles(files, filepath.Join(sub, f.Name()), ours)
					if !ours && idle(filepath.Join(sub, f.Name())) {
						dirs = append(dirs, filepath.Join(sub, f.Name()))
					}
				}
			}
		case d.IsDir() && isFanOut(name): // format 2: entries straight under the cache directory
			files = appendFiles(files, filepath.Join(c.dir, name), false)
			if idle(filepath.Join(c.dir, name)) {
				dirs = append(dirs, filepath.Join(c.dir, name))
			}
		}
	}
	slices.Reverse(dirs) // the deepest first: a version's directory after its fan-out
	return files, dirs
}

// appendFiles adds the files of an entry directory.
func appendFiles(files []cacheFile, dir string, ours bool) []cacheFile {
	list, _ := os.ReadDir(dir)
	for _, e := range list {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, cacheFile{path: filepath.Join(dir, e.Name()), size: fi.Size(), used: fi.ModTime(),
			ours: ours, temp: strings.HasPrefix(e.Name(), tempPrefix)})
	}
	return files
}

// isFanOut reports whether name is one of the 256 directories entries are
// spread over: two lower-case hex digits.
func isFanOut(name string) bool {
	return len(name) == 2 && strings.Trim(name, "0123456789abcdef") == ""
}
