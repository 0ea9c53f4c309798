package cue

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/berth-gpu/berth"
)

// The parent and its child process speak in frames: a uvarint length and
// that many bytes. The parent sends a request (a JSON header, then each
// file as a frame of its path and a frame of its content); the child
// answers with JSON messages, one per frame.

// request is the header of what the parent asks of a child.
type request struct {
	Timeout     time.Duration `json:"timeout"`
	MaxMemory   int64         `json:"maxMemory"`
	Parallelism int           `json:"parallelism"`
	Profile     string        `json:"profile,omitempty"` // Options.Profile
	Dirs        []string      `json:"dirs"`              // the instances to evaluate
	Files       int           `json:"files"`             // how many files follow
}

// message is one frame of a child's answer. A child sends Start and Done
// as it goes, then one Result per instance and End; or Runaway, when its
// own bounds stopped it; or Fail, when berth failed.
type message struct {
	Start   []string    `json:"start,omitempty"`
	Done    []string    `json:"done,omitempty"`
	Result  *wireResult `json:"result,omitempty"`
	End     bool        `json:"end,omitempty"`
	Runaway Errors      `json:"runaway,omitempty"`
	Fail    string      `json:"fail,omitempty"`
}

// wireResult is an instanceResult in transit. Its key is not sent: the
// parent computes it from its own copy of the tree.
type wireResult struct {
	Dir     string       `json:"dir"`
	Deps    []string     `json:"deps"`
	Errs    Errors       `json:"errs,omitempty"`
	Objects []wireObject `json:"objects,omitempty"`
	Invalid []string     `json:"invalid,omitempty"`
	Files   []string     `json:"files,omitempty"` // the files Positions name, by index
	Failed  bool         `json:"failed,omitempty"`
}

type wireObject struct {
	Key   string          `json:"key"`
	Pos   berth.Pos       `json:"pos"`
	Value json.RawMessage `json:"value"`
	// Positions are the object's positions by path, compacted (see
	// encodePositions): as a map, they were most of what a parent
	// decoded, a child's answer or a cached one.
	Positions string `json:"positions,omitempty"`
}

// maxMessage is the longest error message a child sends: CUE quotes
// values in its messages, and a value can be as large as the evaluation
// made it.
const maxMessage = 2000

// toWire converts a result for sending, and says how many bytes its
// objects take; it gives up (nil) when they take more than limit.
func toWire(r *instanceResult, limit int64) (*wireResult, int64, error) {
	w := &wireResult{Dir: r.dir, Deps: r.deps, Invalid: r.invalid, Failed: r.failed}
	files := &fileTable{index: map[string]int{}}
	defer func() { w.Files = files.names }()
	size := int64(0)
	for _, e := range r.errs {
		if len(e.Message) > maxMessage {
			e.Message = strings.ToValidUTF8(e.Message[:maxMessage], "") + "…"
		}
		w.Errs = append(w.Errs, e)
	}
	for _, o := range r.objects {
		b, err := json.Marshal(o.value)
		if err != nil {
			return nil, 0, fmt.Errorf("encode %s: %w", o.key, err)
		}
		if size += int64(len(b)); size > limit {
			return nil, size, nil
		}
		w.Objects = append(w.Objects, wireObject{Key: o.key, Pos: o.pos, Value: b, Positions: encodePositions(o.key, o.positions, files)})
	}
	return w, size, nil
}

func fromWire(w *wireResult, t *tree) (*instanceResult, error) {
	r := &instanceResult{dir: w.Dir, deps: w.Deps, errs: w.Errs, invalid: w.Invalid, failed: w.Failed}
	r.key = hashDeps(t, r.deps)
	r.objects = make([]object, 0, len(w.Objects))
	for _, wo := range w.Objects {
		o, err := decodeObject(wo, w.Files)
		if err != nil {
			return nil, fmt.Errorf("decode %s from the evaluation process: %w", wo.Key, err)
		}
		r.objects = append(r.objects, o)
	}
	return r, nil
}

// decodeObject decodes one object a child sent, or the disk cache kept,
// into its berth type.
//
// The values are decoded with the JSON decoder that is to become
// encoding/json/v2: decoding is most of a warm load (50,000 workloads from
// the disk cache), and it decodes berth's types in about 0.4x of
// encoding/json's time. What it is given was written by encoding/json
// from the same types (exact field names, no duplicates, valid UTF-8), so
// the two decode it alike; TestDecodersAgree holds them to that.
//
// Its positions are left as they came, decoded only when a path of the
// object is asked for (see positionIndex).
func decodeObject(wo wireObject, files []string) (object, error) {
	o := object{key: wo.Key, pos: wo.Pos, enc: wo.Positions, files: files}
	var err error
	field, _, _ := strings.Cut(wo.Key, ".")
	switch field {
	case "clusters":
		o.value, err = decodeAs[berth.Cluster](wo.Value)
	case "flavors":
		o.value, err = decodeAs[berth.Flavor](wo.Value)
	case "cohorts":
		o.value, err = decodeAs[berth.Cohort](wo.Value)
	case "teams":
		o.value, err = decodeAs[berth.Team](wo.Value)
	case "workloads":
		wl := new(berth.Workload) // a pointer: the object holds it without a copy
		err = jsonv2.Unmarshal(wo.Value, wl)
		wl.Pos = wo.Pos
		o.value = wl
	case "policy":
		o.value = wo.Value
	default:
		err = errors.New("unknown kind of object")
	}
	return o, err
}

// fileTable numbers the files a result's positions name.
type fileTable struct {
	names []string
	index map[string]int
}

func (f *fileTable) of(name string) int {
	i, ok := f.index[name]
	if !ok {
		i = len(f.names)
		f.index[name] = i
		f.names = append(f.names, name)
	}
	return i
}

// encodePositions writes an object's positions one per line, sorted, as
// "PATH\tFILE\tLINE\tCOL": PATH without the object's key when it starts
// with it ("" for the object itself, ".image" for a field), quoted when
// it holds a tab or a newline or starts with a quote; FILE an index into
// files.
func encodePositions(key string, ps map[string]berth.Pos, files *fileTable) string {
	paths := make([]string, 0, len(ps))
	for p := range ps {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var b strings.Builder
	for _, p := range paths {
		pos := ps[p]
		rel, ok := strings.CutPrefix(p, key)
		if !ok || strings.ContainsAny(rel, "\t\n") || strings.HasPrefix(rel, `"`) || strings.HasPrefix(rel, "!") {
			rel = "!" + strconv.Quote(p) // the whole path, quoted
		}
		b.WriteString(rel)
		b.WriteByte('\t')
		b.WriteString(strconv.Itoa(files.of(pos.File)))
		b.WriteByte('\t')
		b.WriteString(strconv.Itoa(pos.Line))
		b.WriteByte('\t')
		b.WriteString(strconv.Itoa(pos.Col))
		b.WriteByte('\n')
	}
	return b.String()
}

// decodePositions reads what encodePositions wrote.
func decodePositions(key, s string, files []string) (map[string]berth.Pos, error) {
	out := make(map[string]berth.Pos, strings.Count(s, "\n"))
	for s != "" {
		line, rest, _ := strings.Cut(s, "\n")
		s = rest
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("position %q: want 4 fields", line)
		}
		p := key + f[0]
		if q, ok := strings.CutPrefix(f[0], "!"); ok {
			u, err := strconv.Unquote(q)
			if err != nil {
				return nil, fmt.Errorf("position %q: %w", line, err)
			}
			p = u
		}
		file, err1 := strconv.Atoi(f[1])
		ln, err2 := strconv.Atoi(f[2])
		col, err3 := strconv.Atoi(f[3])
		if err := errors.Join(err1, err2, err3); err != nil || file < 0 || file >= len(files) {
			return nil, fmt.Errorf("position %q: not a file, line and column", line)
		}
		out[p] = berth.Pos{File: files[file], Line: ln, Col: col}
	}
	return out, nil
}

func writeFrame(w *bufio.Writer, b []byte) error {
	var n [binary.MaxVarintLen64]byte
	if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// errFrameTooLarge is a frame longer than the reader accepts.
var errFrameTooLarge = errors.New("frame too large")

func readFrame(r *bufio.Reader, limit int64) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errFrameTooLarge, n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// writeRequest sends what a child is to evaluate: the header and the
// files of the tree at paths (tree.requestFiles), written straight to the
// pipe (no copy of the tree).
func writeRequest(w io.Writer, req request, t *tree, paths []string) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	req.Files = len(paths)
	h, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if err := writeFrame(bw, h); err != nil {
		return err
	}
	for _, p := range paths {
		if err := writeFrame(bw, []byte(p)); err != nil {
			return err
		}
		if err := writeFrame(bw, t.files[p]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// readRequest is the child's side of writeRequest.
func readRequest(r io.Reader) (request, *tree, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var req request
	h, err := readFrame(br, 1<<20)
	if err != nil {
		return req, nil, fmt.Errorf("read the request: %w", err)
	}
	if err := json.Unmarshal(h, &req); err != nil {
		return req, nil, fmt.Errorf("read the request: %w", err)
	}
	files := make(map[string][]byte, req.Files)
	for range req.Files {
		p, err := readFrame(br, 4096)
		if err != nil {
			return req, nil, fmt.Errorf("read the request: %w", err)
		}
		b, err := readFrame(br, 1<<30)
		if err != nil {
			return req, nil, fmt.Errorf("read the request: %s: %w", p, err)
		}
		files[string(p)] = b
	}
	return req, newTree(files), nil
}

// decodeAs decodes one object the child sent back as a T.
func decodeAs[T any](b []byte) (T, error) {
	var v T
	err := jsonv2.Unmarshal(b, &v)
	return v, err
}
