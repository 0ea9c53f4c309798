package sim

// SplitMix64 is the portable generator the paper's experiment is specified
// with (the trace README): the same seed gives the same shuffle in any
// language. All arithmetic is mod 2^64.
type SplitMix64 struct{ state uint64 }

// NewSplitMix64 seeds a generator: state = seed.
func NewSplitMix64(seed uint64) *SplitMix64 { return &SplitMix64{state: seed} }

// Next returns the next value.
func (r *SplitMix64) Next() uint64 {
	r.state += 0x9E3779B97F4A7C15
	z := r.state
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// Below returns Next() mod n (n > 0). The slight modulo bias is part of
// the specification.
func (r *SplitMix64) Below(n int) int { return int(r.Next() % uint64(n)) }

// Shuffle permutes n elements by swapping element i with element
// Below(i+1), for i from n-1 down to 1.
func (r *SplitMix64) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i >= 1; i-- {
		swap(i, r.Below(i+1))
	}
}
