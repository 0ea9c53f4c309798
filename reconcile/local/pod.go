package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-gpu/berth"
)

// Files in a pod directory.
const (
	fileSpec   = "spec.json"
	fileLock   = "lock"
	filePID    = "shim.pid"
	fileShim   = "shim.log"
	fileStdout = "stdout.log"
	fileStderr = "stderr.log"
	fileExit   = "exit.json"
	dirWork    = "work"
)

// Exit is how a pod's process ended: exit.json, written by the shim last
// and atomically.
type Exit struct {
	ExitCode int `json:"exitCode"`
	// Signal names the signal that killed the process ("SIGKILL"), if one
	// did.
	Signal string `json:"signal,omitempty"`
	// Reason is empty for a clean exit; otherwise "exit code 2", "killed:
	// maxDuration 1h exceeded", "terminated", "killed by signal SIGSEGV" or
	// "start failed: ...".
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Succeeded reports whether the process ended cleanly.
func (e Exit) Succeeded() bool { return e.ExitCode == 0 && e.Reason == "" }

// podState is where a pod is in its life, seen from outside the shim.
type podState int

const (
	podNotStarted podState = iota // no shim has taken it over
	podLive                       // its shim holds the lock
	podExited                     // exit.json is written
	podLost                       // a shim took it over but ended without exit.json
)

// podStatus is a pod's state and, when it exited, how.
type podStatus struct {
	state podState
	exit  Exit
}

// reasonLost is why a pod whose shim vanished failed.
const reasonLost = "the shim ended without recording an exit (was the machine restarted?)"

// probePod looks at a pod directory. It writes nothing: the lock is only
// tried, and released at once when free. The order matters: exit.json is
// written before the shim exits and releases the lock, so it is read again
// after finding the lock free.
func probePod(dir string) (podStatus, error) {
	if e, ok, err := readExit(dir); err != nil || ok {
		return podStatus{state: podExited, exit: e}, err
	}
	held, err := lockHeld(filepath.Join(dir, fileLock))
	if err != nil {
		return podStatus{}, err
	}
	if held {
		return podStatus{state: podLive}, nil
	}
	if e, ok, err := readExit(dir); err != nil || ok {
		return podStatus{state: podExited, exit: e}, err
	}
	if _, err := os.Stat(filepath.Join(dir, filePID)); err == nil {
		return podStatus{state: podLost}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return podStatus{}, err
	}
	return podStatus{state: podNotStarted}, nil
}

func readExit(dir string) (Exit, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileExit))
	if errors.Is(err, fs.ErrNotExist) {
		return Exit{}, false, nil
	}
	if err != nil {
		return Exit{}, false, err
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return Exit{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, fileExit), err)
	}
	return e, true, nil
}

// lockHeld reports whether a process holds the flock on path. A missing
// file is not held.
func lockHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", path, err)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}

// readPID reads the shim's pid from shim.pid.
func readPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, filePID))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// writeFileAtomic writes a file so a reader sees the old content or the
// new, never a part: write a temporary file, fsync, rename, fsync the
// directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// pathSafe makes a name safe as one path element (berth.PathSafe).
func pathSafe(s string) string { return berth.PathSafe(s) }
