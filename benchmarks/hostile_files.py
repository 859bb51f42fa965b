"""Every reader against many hostile files: cases tried, outcomes and peak memory, per reader.

    python benchmarks/hostile_files.py [--cases 500] [--seed 0] [--memory-limit-gib 3] [--readers checkpoint,amat,...]

Each reader (checkpoints, amat, IDX, CIFAR, ``npz:``, cifar10_subset, ImageNet, image
folders) runs in its own process under an address-space limit (``RLIMIT_AS``, default 3 GiB
for the whole process, interpreter and torch included). There, hypothesis draws ``--cases``
damaged file sets from the reader's family in tests/hostile_readers.py (the same families the
test suite fuzzes with fewer cases), from a fixed seed, and loads each. Every outcome is
counted: a correct load, the library's one-line error, or a failure (anything else: a
traceback, a message of more than one line, a reader running out of memory, a case running
longer than ``--case-timeout`` seconds). The table gives, per reader, the cases, the outcomes,
the slowest case, and the peak resident memory of the process against its size after imports.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]


class Hang(Exception):
    pass


def on_alarm(signum, frame):
    raise Hang()


def child(name: str, cases: int, seed: int, case_timeout: int) -> dict:
    """Run ``cases`` hostile file sets of one reader in this process; the counts as a dict."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fixed_seed

    from hostile import run_case
    from hostile_readers import READERS

    reader = READERS[name]
    outcomes, failures, slowest = collections.Counter(), [], 0.0
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    signal.signal(signal.SIGALRM, on_alarm)

    @fixed_seed(seed)
    @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(reader.damages)
    def case(damage):
        nonlocal slowest
        start = time.perf_counter()
        signal.alarm(case_timeout)
        try:
            with tempfile.TemporaryDirectory() as folder:
                outcomes[run_case(reader, damage, Path(folder))] += 1
        except Hang:
            outcomes["failure"] += 1
            failures.append(f"hang: {damage!r:.300}")
        except BaseException as error:  # noqa: BLE001 - counted, not raised: every case is tried
            outcomes["failure"] += 1
            failures.append(f"{type(error).__name__}: {str(error)[:200]} for {damage!r:.300}")
        finally:
            signal.alarm(0)
        slowest = max(slowest, time.perf_counter() - start)

    case()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"reader": name, "cases": sum(outcomes.values()), "outcomes": dict(outcomes), "failures": failures[:5],
            "slowest_s": round(slowest, 3), "baseline_mib": round(baseline / 1024), "peak_mib": round(peak / 1024)}


def run_reader(name: str, args) -> dict:
    limit = int(args.memory_limit_gib * (1 << 30))

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    start = time.perf_counter()
    process = subprocess.run([sys.executable, __file__, "--child", name, "--cases", str(args.cases), "--seed", str(args.seed),
                              "--case-timeout", str(args.case_timeout)], capture_output=True, text=True, preexec_fn=limit_memory)
    if process.returncode != 0:
        return {"reader": name, "cases": 0, "outcomes": {"failure": 1}, "failures": [process.stderr[-500:]], "slowest_s": 0,
                "baseline_mib": 0, "peak_mib": 0, "wall_s": round(time.perf_counter() - start, 1)}
    return {**json.loads(process.stdout.strip().splitlines()[-1]), "wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="hostile file sets per reader (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit-gib", type=float, default=3.0, help="RLIMIT_AS of each reader's process (default 3)")
    parser.add_argument("--case-timeout", type=int, default=60, help="seconds after which a case counts as a hang (default 60)")
    parser.add_argument("--readers", help="comma-separated subset (default: all)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cases, args.seed, args.case_timeout)))
        return

    from hostile_readers import READERS
    from machine import hardware

    names = args.readers.split(",") if args.readers else list(READERS)
    load_before = os.getloadavg()
    start = time.perf_counter()
    results = [run_reader(name, args) for name in names]
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    print(f"hardware: {hardware()}; Python {platform.python_version()}; {args.cases} cases per reader, seed {args.seed}; "
          f"each reader's process under RLIMIT_AS = {args.memory_limit_gib:g} GiB; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; {wall:.0f} s in all\n")
    print("| reader | cases | correct loads | one-line errors | failures | slowest case (s) | peak RSS (MiB) | RSS after imports (MiB) |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for result in results:
        outcomes = dict(result["outcomes"])
        loaded, failures = outcomes.pop("loaded", 0), outcomes.pop("failure", 0)
        errors = ", ".join(f"{count} {kind}" for kind, count in sorted(outcomes.items())) or "0"
        print(f"| {result['reader']} | {result['cases']} | {loaded} | {errors} | {failures} | {result['slowest_s']:.2f} | "
              f"{result['peak_mib']} | {result['baseline_mib']} |")
    for result in results:
        for failure in result["failures"]:
            print(f"failure ({result['reader']}): {failure}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_before": load_before, "load_after": load_after, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
