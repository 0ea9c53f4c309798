package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Node is one row of a trace's node list.
type Node struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	GPUs      int
	Model     string
}

// Pod is one row of a trace's pod list. Times are seconds from the trace's
// start.
type Pod struct {
	Name      string
	CPUMilli  int64
	MemoryMiB int64
	NumGPU    int
	// GPUMilli is the share of each GPU in thousandths; 1000 for whole
	// GPUs, 0 when NumGPU is 0.
	GPUMilli int64
	// GPUSpec lists the GPU models the pod may run on; empty: any.
	GPUSpec  []string
	QoS      string
	Phase    string
	Creation int64
	Deletion int64
	// Scheduled is when the trace started the pod; -1 when it never did.
	Scheduled int64
}

// GPURequest is what the pod asks of the cluster's GPUs, in thousandths:
// NumGPU x GPUMilli.
func (p Pod) GPURequest() int64 { return int64(p.NumGPU) * p.GPUMilli }

// Fractional reports whether the pod asks for a share of one GPU.
func (p Pod) Fractional() bool { return p.NumGPU == 1 && p.GPUMilli < 1000 }

// Trace is a node list and a pod list.
type Trace struct {
	Nodes []Node
	Pods  []Pod
}

// Capacity is the trace's GPU capacity in thousandths.
func (t *Trace) Capacity() int64 {
	var n int64
	for _, x := range t.Nodes {
		n += int64(x.GPUs) * 1000
	}
	return n
}

// RowError is a bad row (or header) of a trace file.
type RowError struct {
	File string
	Line int
	Err  error
}

func (e *RowError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

var (
	nodeColumns = []string{"sn", "cpu_milli", "memory_mib", "gpu", "model"}
	podColumns  = []string{"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
		"pod_phase", "creation_time", "deletion_time", "scheduled_time"}
)

// readTable reads a CSV file whose header names at least the given columns
// (in any order) and calls row for every record with the fields in the
// order of columns. Errors name the file and line.
func readTable(file string, r io.Reader, columns []string, row func(line int, f []string) error) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return &RowError{File: file, Line: 1, Err: errors.New("empty file: want a header row")}
	}
	if err != nil {
		return csvError(file, err)
	}
	at := map[string]int{}
	for i, h := range header {
		at[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	idx := make([]int, len(columns))
	var missing []string
	for i, c := range columns {
		j, ok := at[c]
		if !ok {
			missing = append(missing, c)
		}
		idx[i] = j
	}
	if len(missing) > 0 {
		return &RowError{File: file, Line: 1, Err: fmt.Errorf("header lacks column %s (want %s)",
			strings.Join(missing, ", "), strings.Join(columns, ","))}
	}
	fields := make([]string, len(columns))
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return csvError(file, err)
		}
		line, _ := cr.FieldPos(0)
		for i, j := range idx {
			fields[i] = strings.TrimSpace(rec[j])
		}
		if err := row(line, fields); err != nil {
			return &RowError{File: file, Line: line, Err: err}
		}
	}
}

func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &RowError{File: file, Line: pe.Line, Err: pe.Err}
	}
	return fmt.Errorf("%s: %w", file, err)
}

func parseInt(column, s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%s is empty", column)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not an integer", column, s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%s %d is negative", column, n)
	}
	return n, nil
}

// ReadNodes reads a node list (sn,cpu_milli,memory_mib,gpu,model). file
// names the input in errors.
func ReadNodes(file string, r io.Reader) ([]Node, error) {
	var out []Node
	seen := map[string]int{}
	err := readTable(file, r, nodeColumns, func(line int, f []string) error {
		n := Node{Name: f[0], Model: f[4]}
		if n.Name == "" {
			return errors.New("sn is empty")
		}
		if prev, ok := seen[n.Name]; ok {
			return fmt.Errorf("node %s is listed twice (first on line %d)", n.Name, prev)
		}
		seen[n.Name] = line
		var err error
		if n.CPUMilli, err = parseInt("cpu_milli", f[1]); err != nil {
			return err
		}
		if n.MemoryMiB, err = parseInt("memory_mib", f[2]); err != nil {
			return err
		}
		g, err := parseInt("gpu", f[3])
		if err != nil {
			return err
		}
		if g > 64 {
			return fmt.Errorf("gpu %d: more than 64 GPUs on one node", g)
		}
		n.GPUs = int(g)
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no nodes", file)
	}
	return out, nil
}

// ReadPods reads a pod list (name,cpu_milli,memory_mib,num_gpu,gpu_milli,
// gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time). file
// names the input in errors.
func ReadPods(file string, r io.Reader) ([]Pod, error) {
	var out []Pod
	seen := map[string]int{}
	err := readTable(file, r, podColumns, func(line int, f []string) error {
		p := Pod{Name: f[0], QoS: f[6], Phase: f[7], Scheduled: -1}
		if p.Name == "" {
			return errors.New("name is empty")
		}
		if prev, ok := seen[p.Name]; ok {
			return fmt.Errorf("pod %s is listed twice (first on line %d)", p.Name, prev)
		}
		seen[p.Name] = line
		var err error
		if p.CPUMilli, err = parseInt("cpu_milli", f[1]); err != nil {
			return err
		}
		if p.MemoryMiB, err = parseInt("memory_mib", f[2]); err != nil {
			return err
		}
		n, err := parseInt("num_gpu", f[3])
		if err != nil {
			return err
		}
		if n > 64 {
			return fmt.Errorf("num_gpu %d: more than 64 GPUs for one pod", n)
		}
		p.NumGPU = int(n)
		if p.GPUMilli, err = parseInt("gpu_milli", f[4]); err != nil {
			return err
		}
		switch {
		case p.NumGPU == 0:
			p.GPUMilli = 0 // a pod without GPUs asks for none, whatever the column says
		case p.GPUMilli == 0 || p.GPUMilli > 1000:
			return fmt.Errorf("gpu_milli %d: want 1 to 1000 for a pod with GPUs", p.GPUMilli)
		case p.NumGPU > 1 && p.GPUMilli != 1000:
			return fmt.Errorf("gpu_milli %d with num_gpu %d: a share of a GPU needs num_gpu 1", p.GPUMilli, p.NumGPU)
		}
		if f[5] != "" {
			for _, m := range strings.Split(f[5], "|") {
				if m = strings.TrimSpace(m); m != "" {
					p.GPUSpec = append(p.GPUSpec, m)
				}
			}
			slices.Sort(p.GPUSpec)
		}
		if p.Creation, err = parseInt("creation_time", f[8]); err != nil {
			return err
		}
		if p.Deletion, err = parseInt("deletion_time", f[9]); err != nil {
			return err
		}
		if p.Deletion < p.Creation {
			return fmt.Errorf("deletion_time %d is before creation_time %d", p.Deletion, p.Creation)
		}
		if f[10] != "" {
			if p.Scheduled, err = parseInt("scheduled_time", f[10]); err != nil {
				return err
			}
			if p.Scheduled < p.Creation || p.Scheduled > p.Deletion {
				return fmt.Errorf("scheduled_time %d is outside creation_time %d to deletion_time %d",
					p.Scheduled, p.Creation, p.Deletion)
			}
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no pods", file)
	}
	return out, nil
}
