package local

import (
	"os"
)

// cappedLog is a log file that never grows past max bytes: when full it is
// renamed to path.1 (replacing the previous one) and a new file begun, so a
// process flooding its output takes at most twice max on disk.
type cappedLog struct {
	path string
	max  int64
	f    *os.File
	size int64
}

func openCappedLog(path string, max int64) (*cappedLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &cappedLog{path: path, max: max, f: f, size: st.Size()}, nil
}

// Write writes p, rotating as often as the cap asks. It reports len(p) even
// when it drops bytes it cannot write, so the copy from the process's pipe
// goes on draining it (a blocked pipe would stall the process).
func (l *cappedLog) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if l.size >= l.max {
			if err := l.rotate(); err != nil {
				return n, nil
			}
		}
		chunk := p
		if room := l.max - l.size; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		w, err := l.f.Write(chunk)
		l.size += int64(w)
		if err != nil {
			return n, nil
		}
		p = p[len(chunk):]
	}
	return n, nil
}

func (l *cappedLog) rotate() error {
	l.f.Close()
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

func (l *cappedLog) Close() error { return l.f.Close() }
