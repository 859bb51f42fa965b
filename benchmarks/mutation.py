"""Mutation run over the modules that define correctness: does each area's tests fail when its code is wrong?

    python benchmarks/mutation.py [--areas container,evaluation,...] [--out mutation.json]

For each area, a fresh copy of the repository gets a ``[tool.mutmut]`` table naming the area's
modules and its tests, and ``mutmut run`` mutates those modules (one small change per mutant:
an operator, a constant, a comparison, a dropped argument) and runs, for each mutant, the area's
tests that reach the mutated function. A mutant is killed when a test fails or times out and
survives when all pass. The native kernels are off (``PIXELRNN_NATIVE=0``): the mutated Python
paths are the ones that run, and no copy builds its own kernels. Prints each area's counts and
survivors and writes them as JSON; ``docs/testing.md`` records a run. Needs ``pip install
'pixelrnn[dev]'`` (mutmut 3.8). One area at a time, one process: the numbers are for 2 cores.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# area: (modules to mutate, the area's tests, mutant-name globs (none: every mutant of the modules))
AREAS = {
    "container": (["pixelrnn/codec/container.py"],
                  ["tests/codec/test_container.py", "tests/codec/test_container_fields.py", "-k", "not fuzz"], []),
    "evaluation": (["pixelrnn/evaluation.py"], ["tests/test_evaluation.py"], []),
    "schedule": (["pixelrnn/training/trainer.py"],
                 ["tests/training/test_trainer_numbers.py", "tests/training/test_trainer.py::test_learning_rate_schedules"],
                 ["pixelrnn.training.trainer.x_learning_rate__mutmut_*"]),
    "rules": (["pixelrnn/layers/rules.py"],
              ["tests/layers/test_lstm.py", "tests/layers/test_masked_conv.py", "tests/layers/test_skew.py", "-k", "not compile"], []),
    "skew": (["pixelrnn/layers/skew.py"], ["tests/layers/test_skew.py", "tests/layers/test_lstm.py", "-k", "not compile"], []),
    "masks": (["pixelrnn/layers/masked_conv.py"], ["tests/layers/test_masked_conv.py", "tests/models/test_causality.py"], []),
    # The Python scans and the layers' step-by-step references they are compared with: 1,306 mutants in
    # all, so the step itself (cell forward and backward, the diagonal walk, the two directions).
    "scan": (["pixelrnn/layers/scan.py", "pixelrnn/layers/lstm.py"], ["tests/layers/test_lstm.py", "-k", "not compile"],
             [f"pixelrnn.layers.{name}__mutmut_*" for name in (
                 "scan.x__cell_forward", "scan.x__cell_backward", "scan.x__diagonal", "scan.x_combine_directions",
                 "scan.x_direction_gates", "scan.x_lstm_scan", "lstm.x_lstm_cell", "lstm.xǁRowLSTMǁstep", "lstm.xǁDiagonalBiLSTMǁstep")]),
    # The native scans' Python side: the diagonal-major slots, the buffers handed to the kernels, the
    # initial states' gradients read off the padding, and the interface's conversions.
    "native_scan": (["pixelrnn/layers/native_scan.py"], ["tests/layers/test_native_scan.py"],
                    [f"pixelrnn.layers.native_scan.{name}__mutmut_*" for name in (
                        "x_diagonal_major_slots", "x__diagonal_forward", "x__diagonal_backward", "xǁNativeDiagonalScanǁforward")]),
    # The native 1x1 products' Python side: padded weights, the buffers handed to the kernels, which gradients are asked for.
    "native_pointwise": (["pixelrnn/layers/native_pointwise.py"],
                         ["tests/layers/test_native_pointwise.py", "tests/layers/test_masked_conv.py"], []),
    "description": (["pixelrnn/models/description.py"],
                    ["tests/models/test_description.py", "tests/models/test_networks.py", "-k", "not compile and not every_preset"], []),
    # The reference engines (native_engines.py and native_column.py drive the C++ kernels, off here): 991
    # mutants in the five modules, so each position's work (the engine's walk, each block, the right-to-left
    # shift, the cached sums read at a position).
    "sampling": (["pixelrnn/sampling/reference_engine.py", "pixelrnn/sampling/reference_engines.py", "pixelrnn/sampling/position_sums.py"],
                 ["tests/sampling/test_engines.py", "tests/models/test_conditioning.py::test_the_engines_equal_the_full_pass_with_labels",
                  "tests/models/test_multiscale.py::test_conditional_engine_matches_the_full_pass_and_sampling_keeps_the_small_image",
                  "tests/models/test_description.py::test_a_made_up_description_is_computed_by_every_float_executor",
                  "-k", "not default and not dtype1 and not cuda"],
                 ["pixelrnn.sampling.reference_engine.*", *(f"pixelrnn.sampling.{name}__mutmut_*" for name in (
                     "reference_engines.x*ǁ_block", "reference_engines.x*ǁ_right_to_left", "reference_engines.x*ǁ_start_blocks_row",
                     "position_sums.xǁMaskedConvAtǁat", "position_sums.xǁPointwiseǁ__call__"))]),
    # 1,094 mutants in the three modules, so the arithmetic: rounding, the tables, the frequencies, the
    # integer cell and the sums of the batched pass and of the quantiser that bounds them.
    "integer": (["pixelrnn/codec/fixed_point.py", "pixelrnn/codec/integer_model.py", "pixelrnn/codec/integer_batched.py"],
                ["tests/codec/test_integer_layers.py", "tests/codec/test_integer_model.py",
                 "tests/models/test_description.py::test_a_made_up_description_is_computed_by_every_integer_executor", "-k", "not bit_for_bit"],
                [f"pixelrnn.codec.{name}__mutmut_*" for name in (
                    "fixed_point.x__round_shift", "fixed_point.x__exp_step", "fixed_point.x_input_values", "fixed_point.x_integer_frequencies",
                    "fixed_point.x_check_cell", "integer_model.x__relu", "integer_model.xǁ_Quantiserǁstream", "integer_model.xǁ_Quantiserǁskip_sum",
                    *(f"integer_batched.xǁ_Passǁ{method}" for method in ("cell", "relu", "pointwise", "stream", "skip_sum", "output")))]),
}
#: Areas whose tests need the native kernels (built once in the area's copy of the repository).
NATIVE_AREAS = {"native_scan", "native_pointwise"}
# Every mutant's status, and the diff of those that were not killed, as JSON (mutmut's own listing, in one process).
LISTING = """
import json
from mutmut.__main__ import SourceFileMutationData, get_diff_for_mutant, status_by_exit_code, walk_mutatable_files
found = {}
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        found[name] = {"status": status, "diff": "" if status == "killed" else get_diff_for_mutant(name, path=data.path)}
print(json.dumps(found))
"""


def copy_repository(target: Path) -> None:
    """The tracked files and the untracked, unignored ones: the working tree as the tests see it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in listed.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def configure(target: Path, modules: list[str], tests: list[str]) -> None:
    table = ["", "[tool.mutmut]", 'source_paths = ["pixelrnn"]', f"only_mutate = {json.dumps(modules)}",
             f"pytest_add_cli_args_test_selection = {json.dumps(tests)}", 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-x"]',
             'process_isolation = "forkserver"', "use_git_change_detection = false", "max_children = 1", ""]
    with open(target / "pyproject.toml", "a") as handle:
        handle.write("\n".join(table))


def run_area(name: str, keep: bool, max_seconds: float | None = None, mutants: list[str] | None = None) -> dict:
    modules, tests, globs = AREAS[name]
    folder = Path(tempfile.mkdtemp(prefix=f"mutation-{name}-"))
    try:
        copy_repository(folder)
        configure(folder, modules, tests)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        # The PyTorch paths, which most areas mutate; the native_scan area tests the native kernels' Python side.
        env.update(PIXELRNN_NATIVE="1" if name in NATIVE_AREAS else "0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "mutmut", "run", "--max-children", "1", *(mutants or globs)], cwd=folder,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=max_seconds)
        except subprocess.TimeoutExpired:  # the mutants not run yet stay "not checked"
            os.killpg(process.pid, signal.SIGTERM)
            output, _ = process.communicate()
        seconds = time.monotonic() - started
        listing = subprocess.run([sys.executable, "-c", LISTING], cwd=folder, env=env, capture_output=True, text=True, check=True)
        patterns = mutants or globs
        statuses = {name: entry for name, entry in json.loads(listing.stdout).items()
                    if not patterns or any(fnmatch.fnmatch(name, pattern) for pattern in patterns)}
        counts: dict[str, int] = {}
        for entry in statuses.values():
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        survivors = {name: entry for name, entry in statuses.items() if entry["status"] != "killed"}
        result = {"area": name, "modules": modules, "tests": tests, "globs": globs, "seconds": round(seconds), "mutants": len(statuses),
                  "counts": counts, "survivors": survivors, "returncode": process.returncode}
        if process.returncode and not statuses:
            result["error"] = output[-3000:]
        return result
    finally:
        if keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", default=",".join(AREAS), help=f"comma-separated, of {', '.join(AREAS)}")
    parser.add_argument("--out", default="mutation.json", help="JSON results (default mutation.json)")
    parser.add_argument("--keep", action="store_true", help="keep each area's copy (its mutants/ folder) for inspection")
    parser.add_argument("--minutes", type=float, help="stop each area after this long; its mutants not run stay 'not checked'")
    parser.add_argument("--mutants", help="comma-separated mutant names or globs (one area): rerun these only, e.g. a run's survivors")
    args = parser.parse_args()
    results = []
    for name in args.areas.split(","):
        result = run_area(name, args.keep, args.minutes and 60 * args.minutes, args.mutants and args.mutants.split(","))
        results.append(result)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"{name}: {result['mutants']} mutants in {result['seconds']} s: {result['counts']}", flush=True)
        for mutant, survivor in result["survivors"].items():
            print(f"  {survivor['status']}: {mutant}\n{survivor['diff']}", flush=True)
        if "error" in result:
            print(result["error"], flush=True)


if __name__ == "__main__":
    main()
