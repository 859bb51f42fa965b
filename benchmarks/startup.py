"""Start-up time of the command line, as a ratio to ``python -c "import torch"``.

    python benchmarks/startup.py [--rounds 5] [--baseline DIR]

Each round starts, one after the other, ``python -c "import torch"``, ``python -m pixelrnn
--help`` and ``python -m pixelrnn presets`` (output discarded), so the three share the machine's
state; the medians of the rounds and the median of the per-round ratios are printed, with the
load average before and after. A ratio near 1 means the command costs little beyond importing
torch, which every command that runs a model needs. ``--baseline DIR`` also times the two
pixelrnn commands of another copy of the package (e.g. ``git archive COMMIT | tar -x -C DIR``),
in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": [sys.executable, "-c", "import torch"],
    "pixelrnn --help": [sys.executable, "-m", "pixelrnn", "--help"],
    "pixelrnn presets": [sys.executable, "-m", "pixelrnn", "presets"],
}


def seconds(command: list[str], package_dir: str | None = None) -> float:
    environment = dict(os.environ, PYTHONPATH=package_dir) if package_dir else None
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=environment)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the three commands (default 5)")
    parser.add_argument("--baseline", metavar="DIR", help="a folder holding another version of the package, timed alongside")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = [(name, command, None) for name, command in COMMANDS.items()]
    if args.baseline:
        runs += [(f"{name} (baseline)", command, args.baseline) for name, command in COMMANDS.items() if "pixelrnn" in name]
    times = {name: [] for name, _, _ in runs}
    for _ in range(args.rounds):
        for name, command, package_dir in runs:
            times[name].append(seconds(command, package_dir))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = times["import torch"]
    for name, values in times.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f"{name:29s} median {statistics.median(values):.2f} s over {args.rounds} rounds; {ratio:.2f} x import torch")


if __name__ == "__main__":
    main()
