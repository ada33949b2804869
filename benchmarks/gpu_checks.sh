#!/usr/bin/env bash
# The GPU checks of issue 11 in one device call, each step's whole output kept under $OUT (default /tmp/gpu_checks)
# and only its summary printed, so that a long table cannot push the figures out of the call's output tail.
#
#   bash benchmarks/gpu_checks.sh [tests] [diagnosis] [torch] [profiling]     (no argument: all four)
#
# tests:     the GPU test suite (marker gpu) of the engine's packages
# diagnosis: benchmarks/mlp_diagnosis.py (host time per call against a bare graph launch)
# torch:     benchmarks/gpu_vs_torch.py for the MLPs (batch 1 and 256, fp32 and fp16) and ResNet-50 fp16 (1, 32, 256)
# profiling: benchmarks/profiling_overhead.py on ResNet-50 fp16 batch 32 in graph mode
# multi:     (issue 13, on a machine with two GPUs; not in the default list) benchmarks/multi_gpu_sweep.py on the
#            issue's case, 4 samples x 5 batch sizes x 3 precisions, in two pairs (PAIRS=N for N; METHOD_CONTROL=1 adds
#            the one-device sweep one configuration per call; CHIP_CONTROL=1 the one-device sweep on the second GPU;
#            TIMING_CACHE=1 every sweep built from one timing cache the warm-up fills; SKIP_WARMUP=1 no warm-up
#            where CuPy's kernel cache is already filled; HANDOFF_CONTROL=N N alternating pairs of the two-GPU sweep
#            with and without measuring processes started before the cluster; TRACE=1 the first all-devices
#            sweep's timeline from every process; FORK_CONTROL=N N alternating pairs with workers forked from
#            perfkit's fork server and spawned)
# interference: (two GPUs; not in the default list) benchmarks/host_interference.py: how much two busy processes on
#            this host slow each other, and a small sweep on cuda:0 alone against beside the same on cuda:1
# Run from the repository root with perfkit on PYTHONPATH (see benchmarks/RESULTS.md for the device set-up).
set -u
out="${OUT:-/tmp/gpu_checks}"
mkdir -p "$out"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests diagnosis torch profiling)
for step in "${steps[@]}"; do
  log="$out/$step.txt"
  start=$(date +%s)
  case "$step" in
    tests)
      python3 -m pytest -q -m gpu -p no:cacheprovider tests/device tests/runtime tests/bench tests/builder tests/ops \
        tests/profiling > "$log" 2>&1
      grep -E "^(FAILED|ERROR)|passed|failed" "$log" | tail -25 ;;
    diagnosis)
      python3 benchmarks/mlp_diagnosis.py > "$log" 2>&1
      grep -E "^#|^##|host us|parts|one inference|Traceback|failed" "$log" ;;
    torch)
      { python3 benchmarks/gpu_vs_torch.py --models mnist_mlp,mlp4096 --batches 1,256 --precisions fp32,fp16 \
          --rounds 3 --min-time 0.3
        python3 benchmarks/gpu_vs_torch.py --models resnet50 --batches 1,32,256 --precisions fp16 --rounds 3 \
          --min-time 0.3; } > "$log" 2>&1
      grep -E "^#|^\| (mnist|mlp|resnet)|failed" "$log" ;;
    profiling)
      python3 benchmarks/profiling_overhead.py --device cuda --model resnet50 --precision fp16 --batch 32 \
        --modes graph > "$log" 2>&1
      grep -E "^#|^==|end-to-end|sum of layer|corrected|GPU compute|layer sum vs|GPU work|per inference|per layer" "$log" ;;
    multi)
      python3 benchmarks/multi_gpu_sweep.py --precisions fp32,fp16,bf16 --pairs "${PAIRS:-2}" --skip-client --skip-drift ${METHOD_CONTROL:+--method-control} \
        ${CHIP_CONTROL:+--chip-control} ${TIMING_CACHE:+--timing-cache} ${SKIP_WARMUP:+--skip-warmup} \
        ${HANDOFF_CONTROL:+--handoff-control "$HANDOFF_CONTROL"} ${FORK_CONTROL:+--fork-control "$FORK_CONTROL"} \
        ${TRACE:+--trace} > "$log" 2>&1
      grep -E "^#|^(one device|devices=|pair|warm-up)|rows arrived|ratio|end to end|per pair|median of|agree \(|build time|time split|first row|one device .* all devices|method control|chip control|by GPU|by engine|tells apart|hand-off|forked workers|fork server|one configuration per call|^start|^steady|^end|^  (caller|measuring|worker|last row)|^    note: " "$log" ;;
    interference)
      python3 benchmarks/host_interference.py --repeats "${REPEATS:-3}" > "$log" 2>&1
      grep -E "^#|processes at once|^  core [0-9]+ with|^(configuration|mnist|lenet|resnet|transformer)|against|Traceback" "$log" ;;
    *) echo "unknown step $step (tests, diagnosis, torch, profiling, multi, interference)"; continue ;;
  esac
  echo "-- $step: $(( $(date +%s) - start )) s, whole output in $log"
done
