package status

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// Split cuts a comment body into parts of at most limit bytes, each
// starting with the cluster's marker (part 2 on: a continuation marker and
// a line saying so). It cuts between lines, never inside a fenced code
// block or a <details> block; a table cut in two gets its header again.
// Only when one such block alone does not fit is it cut inside: it is
// closed at the end of one part and opened again at the start of the next,
// so every part is valid markdown on its own.
func Split(body, cluster string, limit int) []string {
	lines := strings.SplitAfter(body, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	states := scanBlocks(lines)

	var parts []string
	start := 0
	prefix := ""
	for n := 1; ; n++ {
		header := Marker(cluster, n) + "\n"
		if n > 1 {
			header += "_berth plan for `" + cluster + "`, continued (part " + itoa(n) + ")_\n\n"
		}
		header += prefix
		budget := max(limit-len(header), 64)

		size, end, lastSafe := 0, start, -1
		for end < len(lines) && size+len(lines[end]) <= budget {
			size += len(lines[end])
			end++
			if states[end].safe() && end < len(lines) {
				lastSafe = end
			}
		}
		if end == len(lines) {
			parts = append(parts, header+strings.Join(lines[start:], ""))
			return parts
		}
		if lastSafe > start {
			parts = append(parts, header+strings.Join(lines[start:lastSafe], ""))
			start, prefix = lastSafe, states[lastSafe].continuation(lines[lastSafe])
			continue
		}
		// No safe place to cut: close what is open, reopen it next part.
		for end > start {
			if size+len(states[end].closing()) <= budget {
				break
			}
			end--
			size -= len(lines[end])
		}
		if end == start {
			// One line longer than a part: cut the line itself.
			room := budget - len(states[start].closing()) - 1
			head, tail := cutRunes(lines[start], max(room, 1))
			lines = append(lines[:start], append([]string{head + "\n", tail}, lines[start+1:]...)...)
			states = scanBlocks(lines)
			continue
		}
		parts = append(parts, header+strings.Join(lines[start:end], "")+states[end].closing())
		start, prefix = end, states[end].reopening()
	}
}

// blockState is what is open before a line.
type blockState struct {
	fence   string   // the open code fence ("```"), or ""
	details int      // <details> blocks open (outside fences)
	table   []string // the header and separator of the table being read
	// atSep: the line is a table's separator; a cut before it would part
	// the header from its table.
	atSep bool
}

func (s blockState) safe() bool { return s.fence == "" && s.details == 0 && !s.atSep }

// continuation is what a part starting at line must begin with: a table's
// header when the cut falls between its rows.
func (s blockState) continuation(line string) string {
	if s.table != nil && strings.HasPrefix(line, "|") {
		return strings.Join(s.table, "")
	}
	return ""
}

// closing ends, in order, what is open.
func (s blockState) closing() string {
	var b strings.Builder
	if s.fence != "" {
		b.WriteString(s.fence + "\n")
	}
	for range s.details {
		b.WriteString("</details>\n")
	}
	return b.String()
}

// reopening opens again what closing ended.
func (s blockState) reopening() string {
	var b strings.Builder
	for range s.details {
		b.WriteString("<details><summary>(continued)</summary>\n\n")
	}
	if s.fence != "" {
		b.WriteString(s.fence + "\n")
	}
	return b.String()
}

var tableSep = regexp.MustCompile(`^\|[-:| ]+\|\s*$`)

// scanBlocks returns the state before each line, and after the last.
func scanBlocks(lines []string) []blockState {
	states := make([]blockState, len(lines)+1)
	var st blockState
	for i, line := range lines {
		states[i] = st
		t := strings.TrimSpace(line)
		states[i].atSep = st.fence == "" && st.table != nil && tableSep.MatchString(t)
		switch {
		case st.fence != "":
			if strings.HasPrefix(t, st.fence) && strings.Trim(t, "`~") == "" {
				st.fence = ""
			}
		case strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~"):
			ch := t[0]
			n := 0
			for n < len(t) && t[n] == ch {
				n++
			}
			st.fence = t[:n]
			st.table = nil
		default:
			opens := strings.Count(t, "<details")
			closes := strings.Count(t, "</details>")
			st.details = max(st.details+opens-closes, 0)
			switch {
			case !strings.HasPrefix(t, "|"):
				st.table = nil
			case st.table == nil && i+1 < len(lines) && tableSep.MatchString(strings.TrimSpace(lines[i+1])):
				st.table = []string{line, lines[i+1]}
			}
		}
	}
	states[len(lines)] = st
	return states
}

// cutRunes splits s after at most n bytes, on a rune boundary.
func cutRunes(s string, n int) (string, string) {
	if n >= len(s) {
		return s, ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], s[n:]
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}
