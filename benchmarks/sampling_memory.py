"""Peak memory of ``pixelrnn sample -n N``: flat in N, since the npz is written chunk by chunk.

    python benchmarks/sampling_memory.py                       # n = 10,000 and 100,000
    python benchmarks/sampling_memory.py --n 1000 10000 --threads 1 [--arch pixelcnn] [--size 8] [--levels 17] [--tree DIR]

A tiny model (random weights: hidden 4, one layer, output 8; 1 channel, 8x8, 17 levels as the
``digits`` data) is saved to a temporary folder; each ``-n`` then runs ``pixelrnn sample`` in its
own process (``--scale 1 -q``, default chunk), which reports its peak resident set size
(``getrusage``'s ``ru_maxrss``) and wall time. Prints a markdown table with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from machine import hardware  # noqa: E402

CHILD = """
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from pixelrnn.cli import main
start = time.perf_counter()
code = main(sys.argv[2:])
print(json.dumps({"code": code, "seconds": time.perf_counter() - start,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(checkpoint: Path, n: int, out: Path, threads: int, extra: list[str], tree: str | None = None) -> dict:
    """One ``pixelrnn sample`` in a fresh process (the package of ``tree``, else this one): its exit code, seconds and peak RSS."""
    env = {**os.environ, "PYTHONPATH": tree or str(ROOT), "OMP_NUM_THREADS": str(threads)}
    argv = ["sample", str(checkpoint), "-n", str(n), "--out", str(out), "--force", "--seed", "0", "--scale", "1", "-q", "--device", "cpu", *extra]
    done = subprocess.run([sys.executable, "-c", CHILD, str(threads), *argv], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pixelrnn sample -n {n} failed: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] not in (0, None):
        raise SystemExit(f"pixelrnn sample -n {n} failed: {done.stderr.strip()[-2000:]}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000], help="image counts (default 10000 100000)")
    parser.add_argument("--arch", default="pixelcnn")
    parser.add_argument("--size", type=int, default=8, help="image side (default 8)")
    parser.add_argument("--levels", type=int, default=17)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, help="passed on as --batch-size (default: the command's chunk)")
    parser.add_argument("--tree", metavar="DIR", help="run DIR/pixelrnn's command line instead (an earlier version: "
                                                      "git archive REV pixelrnn | tar -x -C DIR)")
    args = parser.parse_args(argv)

    import torch

    from pixelrnn import build_model, save_model

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="sampling-memory-"))
    model = build_model(args.arch, channels=1, levels=args.levels, hidden=4, layers=1, output_hidden=8)
    checkpoint = work / "model.safetensors"
    save_model(model, checkpoint, metadata={"image_size": f"{args.size}x{args.size}"})
    extra = ["--batch-size", str(args.batch_size)] if args.batch_size else []
    print(f"# pixelrnn sample ({args.tree or ROOT}), peak RSS; {hardware()}; {args.threads} thread(s); {args.arch} (hidden 4, 1 layer, output 8, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters), 1x{args.size}x{args.size}, {args.levels} levels; "
          f"load average at start {os.getloadavg()[0]:.2f}\n")
    print("| -n | peak RSS (MiB) | npz (bytes) | wall (s) | images/s | load |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.n:
        out = work / f"samples-{n}.png"
        result = measure(checkpoint, n, out, args.threads, extra, args.tree)
        print(f"| {n:,} | {result['peak_rss_mib']:.0f} | {out.with_suffix('.npz').stat().st_size:,} | {result['seconds']:.1f} "
              f"| {n / result['seconds']:.0f} | {os.getloadavg()[0]:.2f} |", flush=True)
        for path in work.glob(f"samples-{n}*"):
            path.unlink()


if __name__ == "__main__":
    main()
