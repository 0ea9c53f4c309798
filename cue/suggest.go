package cue

import (
	"fmt"
	"slices"
)

// suggest returns `; did you mean "x"?` for the candidate closest to name,
// when one is close enough to be a likely typo, and "" otherwise.
func suggest(name string, candidates []string) string {
	best, bestD := "", -1
	sorted := append([]string(nil), candidates...)
	slices.Sort(sorted)
	for _, c := range sorted {
		if c == name {
			continue
		}
		d := editDistance(name, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	// One edit in four characters, and at least one.
	if bestD < 0 || bestD > max(1, len(name)/4) {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance, with a transposition of two
// neighbours counted as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
