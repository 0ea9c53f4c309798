package kube

import (
	"sync"
	"testing"
	"time"
)

// TestParallelBounded: every index runs once, and never more than Workers
// at the same time.
func TestParallelBounded(t *testing.T) {
	c := &Cluster{opts: Options{Workers: 3}}
	var mu sync.Mutex
	running, most := 0, 0
	ran := make([]int, 40)
	c.parallel(len(ran), func(i int) {
		mu.Lock()
		running++
		most = max(most, running)
		ran[i]++
		mu.Unlock()
		time.Sleep(time.Millisecond) // let the others pile up
		mu.Lock()
		running--
		mu.Unlock()
	})
	for i, n := range ran {
		if n != 1 {
			t.Errorf("index %d ran %d times", i, n)
		}
	}
	if most > 3 {
		t.Errorf("%d ran at once, want at most 3", most)
	}
}
