package cue_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/berth-gpu/berth/cue"
)

// TestSnapshotIsJSONOnly: a snapshot that is CUE but not JSON (here a
// comprehension that doubles a list forty times) is refused where it
// stops being JSON, before anything evaluates it.
func TestSnapshotIsJSONOnly(t *testing.T) {
	bomb := "{\"cluster\": \"box\", \"time\": \"2026-11-21T09:00:00Z\",\n" +
		" \"nodes\": [for i, _ in [1, 2] {name: \"n\\(i)\", cpu: 8, memory: \"8Gi\"}]}\n"
	_, err := cue.LoadSnapshot("snap.json", []byte(bomb))
	var errs cue.Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(errs[0].Message, "a snapshot is JSON: invalid character 'o' in literal false") {
		t.Fatalf("got %v, want one error saying a snapshot is JSON", err)
	}
	if p := errs[0].Pos(); p.File != "snap.json" || p.Line != 2 || p.Col != 13 {
		t.Errorf("error at %v, want snap.json:2:13", p)
	}
}

// TestSnapshotYAML: a snapshot written as YAML (`berth snapshot -o yaml`)
// reads as the same snapshot as its JSON, and its errors carry the YAML's
// lines and columns. A YAML name, or any name whose content does not
// start with "{", is YAML.
func TestSnapshotYAML(t *testing.T) {
	js, err := os.ReadFile("../fixtures/snapshots/demo-box.json")
	if err != nil {
		t.Fatal(err)
	}
	// The YAML fixture is the JSON one as sigs.k8s.io/yaml writes it.
	y, err := os.ReadFile("../fixtures/snapshots/demo-box.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if conv, err := yaml.JSONToYAML(js); err != nil || !bytes.Equal(conv, y) {
		t.Fatalf("fixtures/snapshots/demo-box.yaml is not demo-box.json in YAML (%v)", err)
	}
	want, err := cue.LoadSnapshot("demo-box.json", js)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"demo-box.yaml", "demo-box.yml", "demo-box"} {
		got, err := cue.LoadSnapshot(name, y)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := cmp.Diff(want, got, quantityEqual); d != "" {
			t.Errorf("%s (-json +yaml):\n%s", name, d)
		}
	}

	for _, tc := range []struct {
		name, data, msg string
		line, col       int
	}{
		{"bad.yaml", "cluster: box\ntime: 2026-11-21T09:00:00Z\nnodes:\n  - name: n\n    cpu: 4\n    memory: 8Gi\n    gpus: -1\n",
			"nodes.0.gpus: invalid value -1 (out of bound >=0)", 7, 5},
		{"bad.yaml", "cluster: box\nnodes: [\n", "did not find expected node content", 2, 0},
		// Aliases that double forty times are cut off, not expanded.
		{"bomb.yaml", "cluster: box\na0: &a0 [x, x]\n" + aliasBomb(40), "aliases expand to more than", 0, 0},
	} {
		_, err := cue.LoadSnapshot(tc.name, []byte(tc.data))
		var errs cue.Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Errorf("%q: got %v, want cue.Errors", tc.data, err)
			continue
		}
		e := errs[0]
		if !strings.Contains(e.Error(), tc.msg) {
			t.Errorf("%q: %q, want it to say %q", tc.data, e.Error(), tc.msg)
		}
		if p := e.Pos(); p.File != tc.name || (tc.line > 0 && p.Line != tc.line) || (tc.col > 0 && p.Col != tc.col) {
			t.Errorf("%q: error at %v, want %s:%d:%d", tc.data, p, tc.name, tc.line, tc.col)
		}
	}
}

// aliasBomb is YAML whose anchor n doubles anchor n-1, n times.
func aliasBomb(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d]\n", i, i, i-1, i-1)
	}
	return b.String()
}

// TestSnapshotFromTheCache: a snapshot read again through a loader with
// an evaluation cache is the snapshot the schema check gives, taken from
// the cache (one entry, written once); an entry altered on disk is not
// trusted (checked again, the same snapshot); a snapshot with an error is
// never kept, so its error names its file each time it is read.
func TestSnapshotFromTheCache(t *testing.T) {
	data, err := os.ReadFile("../fixtures/snapshots/demo-box.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := cue.LoadSnapshot("demo-box.json", data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l := cue.NewLoader(cue.Options{CacheDir: dir, CacheVersion: "test"})
	for i := range 2 {
		got, err := l.LoadSnapshot("demo-box.json", data)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got, quantityEqual); d != "" {
			t.Fatalf("read %d: the snapshot differs from the checked one (-want +got):\n%s", i, d)
		}
	}
	files := entries(t, dir)
	if len(files) != 1 {
		t.Fatalf("cache holds %v, want one entry", files)
	}
	name := files[0]
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	// The kept JSON is what a read takes: rewritten with its checksum
	// redone (as only berth can), it is what the loader returns.
	format, rest, _ := bytes.Cut(b, []byte("\n"))
	_, body, _ := bytes.Cut(rest, []byte("\n"))
	body = bytes.Replace(body, []byte(`"cluster":"box"`), []byte(`"cluster":"kept"`), 1)
	sum := sha256.Sum256(body)
	forged := slices.Concat(format, []byte("\n"+hex.EncodeToString(sum[:])+"\n"), body)
	if err := os.WriteFile(name, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := l.LoadSnapshot("demo-box.json", data); err != nil || got.Cluster != "kept" {
		t.Fatalf("got %v, %v; want the snapshot kept in the cache (cluster kept)", got, err)
	}
	// Flip a byte of the kept JSON: the checksum fails, the snapshot is
	// checked again.
	b[len(b)-10] ^= 0x20
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := l.LoadSnapshot("demo-box.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got, quantityEqual); d != "" {
		t.Fatalf("after the entry was altered (-want +got):\n%s", d)
	}

	broken := bytes.Replace(data, []byte(`"cluster"`), []byte(`"clusterr"`), 1)
	for range 2 {
		_, err := l.LoadSnapshot("broken.json", broken)
		var errs cue.Errors
		if !errors.As(err, &errs) || errs[0].Pos().File != "broken.json" {
			t.Fatalf("got %v, want an error in broken.json", err)
		}
	}
	if files := entries(t, dir); len(files) != 1 {
		t.Errorf("cache holds %v after a broken snapshot, want the one entry", files)
	}
}
