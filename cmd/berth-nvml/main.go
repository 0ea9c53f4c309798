// Command berth-nvml prints this machine's GPUs, as NVIDIA's NVML reports
// them, as one JSON object (gpuinfo.Report) on stdout. berth's local
// backend runs it when it starts and whenever it samples the GPUs'
// utilisation.
//
// It is a binary of its own because it links go-nvml, whose optional NVML
// symbols (nvmlDeviceGetDramEncryptionMode and others a given driver may
// lack) are bound lazily; berth itself links Go's plugin package (through
// fluxcd/pkg/ssa and k8s.io/cli-runtime), which makes the dynamic linker
// bind every symbol at start-up, so a berth that linked go-nvml would not
// start. berth finds berth-nvml beside its own executable or on PATH.
//
//	berth-nvml                  the GPUs of this machine
//	berth-nvml --mock 8xH100    go-nvml's mock devices for that inventory (tests)
//
// A machine where NVML cannot start (no driver) is not an error: the report
// says "source": "none" with NVML's code and what it means. berth-nvml
// exits 1, with the reason on stderr, only when NVML started and then
// failed, and 2 on a usage error.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/berth-gpu/berth/reconcile/local/gpuinfo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nvml.New))
}

// run is berth-nvml with its library as an argument, so tests give it
// go-nvml's mocks.
func run(args []string, stdout, stderr io.Writer, newLib func(...nvml.LibraryOption) nvml.Interface) int {
	fs := flag.NewFlagSet("berth-nvml", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mockInventory := fs.String("mock", "", `discover go-nvml's mock devices for this inventory ("8xH100", "7xH100,1xH100:1g.10gb") instead of the driver`)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "berth-nvml: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var lib nvml.Interface
	source := gpuinfo.SourceNVML
	if *mockInventory != "" {
		gpus, err := gpuinfo.Simulated(*mockInventory)
		if err != nil {
			fmt.Fprintf(stderr, "berth-nvml: --mock: %v\n", err)
			return 2
		}
		lib, source = Mock(gpus), gpuinfo.SourceMock
	} else {
		lib = newLib()
	}
	report, err := probe(lib, source)
	if err != nil {
		fmt.Fprintf(stderr, "berth-nvml: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(report); err != nil {
		fmt.Fprintf(stderr, "berth-nvml: %v\n", err)
		return 1
	}
	return 0
}

// probe starts NVML, lists the GPUs and shuts NVML down again.
func probe(lib nvml.Interface, source string) (gpuinfo.Report, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return gpuinfo.Report{Source: gpuinfo.SourceNone, Code: nvml.ErrorString(ret), Why: initFailure(ret), GPUs: []gpuinfo.GPU{}}, nil
	}
	defer lib.Shutdown()
	r := gpuinfo.Report{Source: source}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		r.Driver = v
	}
	gpus, err := discover(lib)
	if err != nil {
		return r, err
	}
	r.GPUs = gpus
	return r, nil
}

// initFailure says what NVML's Init return code means for a person.
func initFailure(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 not found: no NVIDIA driver on this machine"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "the NVIDIA driver is not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission to use the NVIDIA driver"
	}
	return "Init: " + nvml.ErrorString(ret)
}
