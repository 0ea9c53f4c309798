package berth

import "testing"

func TestRunKeyRoundTrip(t *testing.T) {
	for _, k := range []RunKey{
		{"vision/train", "1"},
		{"nlp/nightly", "1-20261122t0300"},
		{"nlp/eval", ""},
		{"nlp/eval", "v2@retry"},
	} {
		got, err := ParseRunKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseRunKey(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
}

func TestParseRunKeyRejects(t *testing.T) {
	for _, s := range []string{"vision/train", "train@1", "a/b/c@1", "/x@1", "x/@1"} {
		if k, err := ParseRunKey(s); err == nil {
			t.Errorf("ParseRunKey(%q) = %v, want an error", s, k)
		}
	}
}
