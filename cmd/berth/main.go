// Command berth is the GitOps reconciler for GPU clusters: it validates a
// repository of CUE workload and quota definitions, plans what each commit
// would do, and applies it.
//
// This package is flags and wiring only; the work is in the other packages.
package main

import "os"

func main() { os.Exit(Main()) }
