package sim

import (
	"slices"
	"testing"
)

// The values are from an independent implementation (Python, arithmetic
// mod 2^64) of the README's SplitMix64.
func TestSplitMix64(t *testing.T) {
	r := NewSplitMix64(42)
	want := []uint64{0xbdd732262feb6e95, 0x28efe333b266f103, 0x47526757130f9f52, 0x581ce1ff0e4ae394, 0x09bc585a244823f2}
	for i, w := range want {
		if got := r.Next(); got != w {
			t.Fatalf("value %d: got %#x, want %#x", i, got, w)
		}
	}
	a := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	NewSplitMix64(42).Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
	if w := []int{0, 9, 5, 8, 6, 4, 7, 2, 1, 3}; !slices.Equal(a, w) {
		t.Errorf("shuffle: got %v, want %v", a, w)
	}
}

// The paper's pod and node sequences for two seeds, against the same
// independent implementation, on the whole trace.
func TestPaperPods(t *testing.T) {
	tr := fullTrace(t)
	tests := []struct {
		seed      uint64
		first     []string
		pods      int
		drawn     []string
		nodeOrder []int
	}{
		{42, []string{"openb-pod-5570", "openb-pod-7410", "openb-pod-5485"}, 10824,
			[]string{"openb-pod-3058-x1", "openb-pod-0745-x2"}, []int{522, 979, 151}},
		{51, []string{"openb-pod-7528", "openb-pod-0026", "openb-pod-4885"}, 10774,
			[]string{"openb-pod-1678-x1", "openb-pod-1252-x2"}, []int{1118, 613, 1153}},
	}
	for _, tt := range tests {
		pods, order := PaperPods(tr, tt.seed, 130)
		var first, drawn []string
		for _, p := range pods[:3] {
			first = append(first, p.Name)
		}
		for _, p := range pods[len(tr.Pods) : len(tr.Pods)+2] {
			drawn = append(drawn, p.Name)
		}
		if !slices.Equal(first, tt.first) || len(pods) != tt.pods || !slices.Equal(drawn, tt.drawn) || !slices.Equal(order[:3], tt.nodeOrder) {
			t.Errorf("seed %d: first %v, %d pods, drawn %v, nodes %v; want %v, %d, %v, %v",
				tt.seed, first, len(pods), drawn, order[:3], tt.first, tt.pods, tt.drawn, tt.nodeOrder)
		}
	}
}
