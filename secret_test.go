package berth

import (
	"encoding/json"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

// TestEnvVarUnmarshal: an env value decodes to the same string with and
// without escapes, through either JSON package, and a secret to its
// reference; a malformed secret is an error that says what is allowed.
func TestEnvVarUnmarshal(t *testing.T) {
	for _, in := range []string{
		`"1"`, `""`, `"plain value"`, `"quote \" inside"`, `"back\\slash"`, `"tab\tand \u00e9"`, `"ünïcode ✓"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		var v1, v2 Env
		doc := `{"A":` + in + `}`
		if err := json.Unmarshal([]byte(doc), &v1); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if err := jsonv2.Unmarshal([]byte(doc), &v2); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if v1["A"] != Val(want) || v2["A"] != Val(want) {
			t.Errorf("%s: got %q and %q, want %q", in, v1["A"].Value, v2["A"].Value, want)
		}
	}
	var e Env
	if err := jsonv2.Unmarshal([]byte(`{"TOKEN":{"secret":{"name":"hf","key":"token"}}}`), &e); err != nil {
		t.Fatal(err)
	}
	if s := e["TOKEN"].Secret; s == nil || s.Name != "hf" || s.Key != "token" || e["TOKEN"].Value != "" {
		t.Errorf("secret: %+v", e["TOKEN"])
	}
	if err := json.Unmarshal([]byte(`{"X":{"secret":{"name":"hf"}}}`), &e); err == nil {
		t.Error("a secret without a key decoded")
	}
}
