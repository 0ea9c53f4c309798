package webhook

import "testing"

// TestMemorySeenForgetsTheOldest: the in-memory default remembers the last
// n keys; a key seen again does not make it younger.
func TestMemorySeenForgetsTheOldest(t *testing.T) {
	m := newMemorySeen(2)
	for _, step := range []struct {
		key  string
		seen bool
	}{
		{"a", false}, {"b", false}, {"a", true}, // a is still the oldest
		{"c", false}, // forgets a
		{"b", true}, {"c", true}, {"a", false},
	} {
		if got, _ := m.Seen(step.key); got != step.seen {
			t.Fatalf("Seen(%q) = %v, want %v", step.key, got, step.seen)
		}
	}
}
