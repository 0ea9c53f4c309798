#!/bin/sh
# Benchmarks of the trace simulator on the whole Alibaba 2023 GPU trace
# (they skip when ../shared/data/traces/alibaba-gpu-v2023 is not beside the
# repository). For make bench; run from the repository root or anywhere.
#
#   BenchmarkReplay/trace/POLICY      the trace in its own time (target: < 10 s per policy)
#   BenchmarkReplay/contended/POLICY  pods 100x faster on a tenth of the nodes
#   BenchmarkPaperSeed/POLICY         the FGD paper's experiment, one seed (~10,800 cycles)
#
# Extra arguments go to go test, e.g. -cpuprofile cpu.out.
set -eu
cd "$(dirname "$0")/../../.."
exec go test -run '^$' -bench 'BenchmarkReplay|BenchmarkPaperSeed' -benchtime 1x -count 1 "$@" ./reconcile/schedule/sim/
