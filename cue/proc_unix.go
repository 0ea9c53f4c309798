//go:build unix

package cue

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup starts the child in a process group of its own, so that
// killing the group kills whatever it started too.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills the child and its process group. The caller
// makes sure the child is not reaped yet (its pid is still its own).
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// exitSignal names the signal that ended the process ("SIGKILL"), or is
// empty.
func exitSignal(st interface{ Sys() any }) string {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return ""
	}
	switch ws.Signal() {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGXCPU:
		return "SIGXCPU"
	}
	return ws.Signal().String()
}
