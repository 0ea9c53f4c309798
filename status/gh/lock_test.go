package gh

import (
	"sync"
	"testing"
	"time"
)

// The per-pull-request locks serialise writers and leave nothing behind.
func TestPRLocksSerialiseAndDoNotGrow(t *testing.T) {
	k := keyedMutex{m: map[string]*refMutex{}}
	var inside, most int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.lock([]string{"a#1", "a#2"}[i%2])
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if most > 2 {
		t.Errorf("%d writers held the locks of two pull requests at once, want at most 2", most)
	}
	if n := k.len(); n != 0 {
		t.Errorf("%d locks left after every writer finished, want 0", n)
	}
}
