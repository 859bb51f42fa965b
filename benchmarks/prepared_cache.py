"""Memory and time of the prepared cache on a synthetic dataset in the official ImageNet 64x64 layout.

    pip install -e ".[bench]"     # psutil
    python benchmarks/prepared_cache.py [--images 100000] [--steps 200] [--batch-size 8] [--processes 2] [--cold] [--in-memory]

1. Writes ``Imagenet64_train_npz.zip`` (``train_data_batch_1..10.npz``, each with ``data``
   (n, 12288) uint8 and ``labels``) and ``Imagenet64_val_npz.zip`` into a temporary folder,
   deleted at the end unless ``--keep`` (the data is random; only its size matters here).
2. Prepares the cache in a child process: wall time and peak RSS, against a child that only
   imports torch and pixelrnn; then the time a second process takes to check and map it.
3. Trains a tiny PixelCNN under ``torchrun --nproc_per_node P`` for ``--steps`` steps, reading
   the training and validation images from the cache. Each rank reports its private memory
   (USS, from psutil) after the imports, after loading, after building the model, after the
   first step and at its peak later (sampled every 25 steps), its anonymous and file-backed
   RSS, and the resident, private and shared pages of its mappings of the cache (from
   /proc/self/smaps). The data's share of the private memory is what loading added plus the
   cache pages no other process maps. Also the time
   from its start to the end of its first step, and the time to gather a batch (in the
   background thread), to wait for it, and to take a step.
   The first run starts right after the conversion, while its pages are still in the page cache;
   ``--cold`` adds a run after they were dropped from it (posix_fadvise DONTNEED), as for a run
   started long after the conversion. ``--in-memory`` adds a run with ``cache=False``.

Prints the machine, the load average before and after, and everything measured; ``--json``
writes it to a file.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
SIZE = 64


def write_dataset(root: Path, images: int, valid_images: int, seed: int = 0) -> int:
    """The official layout, one member at a time (memory: one member); returns the bytes of images."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    counts = [images // 10 + (i < images % 10) for i in range(10)]
    for part, names, sizes in (("train", [f"train_data_batch_{i}.npz" for i in range(1, 11)], counts),
                               ("val", ["val_data.npz"], [valid_images])):
        with zipfile.ZipFile(root / f"Imagenet{SIZE}_{part}_npz.zip", "w") as archive:
            for name, count in zip(names, sizes):
                member = io.BytesIO()
                np.savez(member, data=rng.integers(0, 256, (count, 3 * SIZE * SIZE), dtype=np.uint8),
                         labels=rng.integers(1, 1001, count))
                archive.writestr(f"Imagenet{SIZE}_{part}_npz/{name}", member.getvalue())
    return (images + valid_images) * 3 * SIZE * SIZE


PEAK = "\nprint(next(int(line.split()[1]) * 1024 for line in open('/proc/self/status') if line.startswith('VmHWM')))"
"""Appended to a child's code: its peak RSS (VmHWM is this process's own high-water mark; the
ru_maxrss that wait4 reports starts from the parent's at the fork)."""


def child(code: str, env: dict) -> tuple[float, int, list[str]]:
    """Run ``code`` in a fresh interpreter: wall seconds, peak RSS in bytes, the other lines it printed."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code + PEAK], env=env, stdout=subprocess.PIPE, text=True, check=True)
    *lines, peak = result.stdout.split("\n")[:-1]
    return time.perf_counter() - start, int(peak), lines


LOAD = ("import time; from pixelrnn.data import load_dataset; start = time.perf_counter(); "
        "s = load_dataset('imagenet64', 'train', data_dir={data!r}, progress=False, cache={cache}); "
        "print(time.perf_counter() - start)")


def proc_status(*keys: str) -> dict[str, int]:
    """Fields of /proc/self/status in bytes (Linux): RssAnon is private heap, RssFile mapped files."""
    found = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in keys:
                found[key] = int(value.split()[0]) * 1024
    return found


def mapped_file_pages(suffix: str) -> dict[str, int]:
    """Rss, Private and Shared bytes of this process's mappings of files ending in ``suffix`` (/proc/self/smaps)."""
    totals = {"Rss": 0, "Private_Clean": 0, "Private_Dirty": 0, "Shared_Clean": 0}
    inside = False
    with open("/proc/self/smaps") as handle:
        for line in handle:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line: range perms offset dev inode [path]
                inside = len(fields) >= 6 and fields[5].endswith(suffix)
            elif inside and fields[0].rstrip(":") in totals:
                totals[fields[0].rstrip(":")] += int(fields[1]) * 1024
    return totals


def worker(args: argparse.Namespace) -> None:
    """One rank under torchrun: train a tiny model on the prepared (or in-memory) dataset, measuring."""
    import psutil
    import torch

    from pixelrnn.data import load_dataset
    from pixelrnn.training import BatchLoader, Trainer, build_run_config

    me = psutil.Process()
    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(1)
    memory = {}

    def sample(label: str) -> None:
        uss = me.memory_full_info().uss
        status = proc_status("RssAnon", "RssFile")
        if label not in memory or uss > memory[label]["uss"]:
            memory[label] = {"uss": uss, **status}

    sample("imports")
    loading = {"data_dir": args.data, "cache": not args.in_memory, "progress": False}
    train = load_dataset("imagenet64", "train", **loading)
    valid = load_dataset("imagenet64", "test", **loading)
    sample("loaded")
    config = build_run_config(None, [f"train.steps={args.steps}", f"train.batch_size={args.batch_size}", "train.log_every=50",
                                     f"train.eval_every={10 * args.steps}", "train.eval_images=256",
                                     f"train.checkpoint_every={10 * args.steps}", "model.hidden=4", "model.layers=1",
                                     "model.output_hidden=8"], **{"model.arch": "pixelcnn", "data.dataset": "imagenet64"})
    trainer = Trainer(config, Path(args.folder), train.images, valid.images, train.levels, dataset_name="imagenet64", progress=False)
    sample("model")

    timings = {"gather": [], "wait": [], "step": []}
    first_step_done = []
    assemble, fetch, step = BatchLoader.assemble, BatchLoader.batch, trainer.train_step

    def timed(kind, function):
        def run(*a, **k):
            start = time.perf_counter()
            result = function(*a, **k)
            timings[kind].append(time.perf_counter() - start)
            return result
        return run

    def counted_step(*a, **k):
        result = timed("step", step)(*a, **k)
        if not first_step_done:
            first_step_done.append(time.time())
            sample("first_step")  # the model's training workspace is allocated by now
        elif trainer.step % 25 == 0:
            sample("training")
        return result

    BatchLoader.assemble = timed("gather", assemble)
    BatchLoader.batch = timed("wait", fetch)
    trainer.train_step = counted_step
    trainer.train()
    sample("training")
    report = {"rank": rank, "memory_mapped": isinstance(trainer.train_images, np.memmap), "memory": memory,
              "cache_pages": mapped_file_pages(".npy"),
              "first_step_seconds": first_step_done[0] - me.create_time(), "dataset_bytes": int(train.images.nbytes),
              "steps": trainer.step, **{f"{kind}_ms": summary(values) for kind, values in timings.items()}}
    Path(args.folder, f"rank{rank}.json").write_text(json.dumps(report))


def summary(seconds: list[float]) -> dict:
    values = seconds[1:] or seconds  # the first step also warms up
    return {"median": 1000 * statistics.median(values), "mean": 1000 * statistics.fmean(values), "count": len(values)}


def gib(count: float) -> str:
    return f"{count / 2**30:.2f} GiB" if abs(count) >= 2**30 else f"{count / 2**20:.1f} MiB"


def drop_from_page_cache(folder: Path) -> None:
    """Evict the prepared arrays' pages from the page cache (clean pages of files no process maps)."""
    for path in folder.rglob("*.npy"):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def torchrun(args: argparse.Namespace, work: Path, env: dict, in_memory: bool, label: str) -> list[dict]:
    run = work / f"run-{label}"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}", __file__, "--worker",
               "--data", str(work / "data"), "--folder", str(run), "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    subprocess.run(command + (["--in-memory"] if in_memory else []), env=env, check=True)
    return [json.loads((run / f"rank{r}.json").read_text()) for r in range(args.processes)]


def data_memory(rank: dict) -> int:
    """Private memory that the data accounts for: what loading added, and the cache's pages only this process mapped."""
    m, pages = rank["memory"], rank["cache_pages"]
    return (m["loaded"]["uss"] - m["imports"]["uss"]) + pages["Private_Clean"] + pages["Private_Dirty"]


def print_ranks(title: str, ranks: list[dict]) -> None:
    print(f"\n{title}")
    for r in ranks:
        m = r["memory"]
        print(f"  rank {r['rank']}: USS after imports {gib(m['imports']['uss'])}, after loading {gib(m['loaded']['uss'])}, "
              f"with the model {gib(m['model']['uss'])}, after the first step {gib(m['first_step']['uss'])}, "
              f"peak later {gib(m['training']['uss'])} (RssAnon {gib(m['training']['RssAnon'])}, RssFile {gib(m['training']['RssFile'])})")
        pages = r["cache_pages"]
        print(f"          the cache's pages in this process at the end: {gib(pages['Rss'])} resident, "
              f"{gib(pages['Private_Clean'] + pages['Private_Dirty'])} of them private, {gib(pages['Shared_Clean'])} shared")
        print(f"          data's share of the private memory (loading + private cache pages): {gib(data_memory(r))} = "
              f"{100 * data_memory(r) / r['dataset_bytes']:.2f}% of the training images ({gib(r['dataset_bytes'])})")
        print(f"          first step done {r['first_step_seconds']:.1f} s after the process started; "
              f"median ms: gather a batch {r['gather_ms']['median']:.2f}, wait for it {r['wait_ms']['median']:.3f}, "
              f"step {r['step_ms']['median']:.1f} ({r['step_ms']['count']} steps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--valid-images", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--in-memory", action="store_true", help="also (or, with --worker, only) train with cache=False")
    parser.add_argument("--cold", action="store_true", help="also train after dropping the cache from the page cache")
    parser.add_argument("--workdir", help="folder for the synthetic data and the cache (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic data and the cache")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    sys.path.insert(0, str(BENCHMARKS))
    from machine import hardware

    work = Path(args.workdir or tempfile.mkdtemp(prefix="pixelrnn-cache-bench-"))
    env = {**os.environ, "PIXELRNN_CACHE_DIR": str(work / "cache"), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    results = {"hardware": hardware(), "load_before": os.getloadavg(), "images": args.images, "processes": args.processes}
    print(f"{results['hardware']}; load average {results['load_before']}; disk free {gib(shutil.disk_usage(work).free)} in {work}")
    try:
        start = time.perf_counter()
        results["dataset_bytes"] = write_dataset(work / "data", args.images, args.valid_images)
        results["generate_seconds"] = time.perf_counter() - start
        print(f"synthetic dataset: {args.images} + {args.valid_images} images, {gib(results['dataset_bytes'])}, "
              f"zips {gib(sum(p.stat().st_size for p in (work / 'data').iterdir()))}, written in {results['generate_seconds']:.1f} s")

        _, results["bare_peak_rss"], _ = child("import torch, pixelrnn", env)
        load = functools.partial(LOAD.format, data=str(work / "data"))
        if args.in_memory:
            seconds, peak, _ = child(load(cache=False), env)
            results.update(in_memory_load_seconds=seconds, in_memory_load_peak_rss=peak)
            print(f"load into memory (cache=False, a fresh process): {seconds:.1f} s, peak RSS {gib(peak)}")
        seconds, peak, _ = child(load(cache=True), env)
        results.update(convert_seconds=seconds, convert_peak_rss=peak)
        reopen_seconds, _, output = child(load(cache=True), env)
        results["reopen_seconds_in_process"] = float(output[0])
        print(f"conversion (a fresh process, including its imports): {seconds:.1f} s, peak RSS {gib(peak)} "
              f"({gib(peak - results['bare_peak_rss'])} above a process that only imports torch and pixelrnn, {gib(results['bare_peak_rss'])}); "
              f"a later process checks and maps it in {1000 * results['reopen_seconds_in_process']:.1f} ms")

        title = f"torchrun --nproc_per_node {args.processes}, {args.steps} steps, global batch {args.batch_size}"
        results["cached"] = torchrun(args, work, env, in_memory=False, label="cached")
        print_ranks(f"{title}, from the cache, right after the conversion:", results["cached"])
        if args.cold:
            drop_from_page_cache(work / "cache")
            results["cached_cold"] = torchrun(args, work, env, in_memory=False, label="cold")
            print_ranks(f"{title}, from the cache, its pages dropped from the page cache first:", results["cached_cold"])
        if args.in_memory:
            results["in_memory"] = torchrun(args, work, env, in_memory=True, label="in-memory")
            print_ranks("the same with cache=False (each rank reads the dataset into memory):", results["in_memory"])
    finally:
        results["load_after"] = os.getloadavg()
        print(f"\nload average after: {results['load_after']}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
