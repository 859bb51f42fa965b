"""Config values and command-line flags against hypothesis: cases, correct runs, one-line errors, tracebacks.

    python benchmarks/config_fuzz.py [--minutes 3] [--seed 0]

Four families of cases, drawn by hypothesis from a fixed seed until the time is up:

- ``override``: ``--set SECTION.KEY=VALUE`` for every key of [model], [data] and [train], with
  values of every kind (huge, negative, zero, NaN, infinite, strings, booleans, lists, tables),
  resolved as ``train`` resolves them (``build_run_config``, the model's configuration and its size);
- ``config file``: a whole TOML/JSON run configuration of random sections and values;
- ``run folder``: a run folder's ``config.json`` replaced by random JSON (deep nesting included),
  read as ``train --resume`` and ``evaluate`` read it;
- ``flags``: ``evaluate``, ``sample``, ``complete``, ``compress`` and ``decompress`` with random
  numeric flags, through ``pixelrnn.cli.main``, the heavy work (scoring, sampling, coding) replaced
  by stubs, so that every check before it runs.

Every outcome is counted: ``ok`` (accepted), ``one line`` (the library's or argparse's error,
exit 2, one line of message) or ``traceback`` (anything else); tracebacks must be 0. The first
few of each are printed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]


def values():
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.integers(-2**70, 2**70), st.integers(-3, 40), st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**64, 10**12]),
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([float("nan"), float("inf"), -0.0, 1e308, 1e-320]),
        st.booleans(), st.text(max_size=12), st.sampled_from(["auto", "cpu", "adam", "cosine", "bf16", "pixelcnn", "digits", ""]),
    )
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                        max_leaves=6)


def toml_value(value) -> str:
    """A value as a --set would spell it (TOML), or its text when TOML has no spelling for it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
    if isinstance(value, (int, str)):
        return json.dumps(value) if isinstance(value, str) else str(value)
    return json.dumps(value, default=str)


class Outcomes:
    def __init__(self):
        self.counts = collections.Counter()
        self.examples = collections.defaultdict(list)

    def run(self, family: str, call, describe: str) -> None:
        from pixelrnn.cli.common import UserError
        from pixelrnn.errors import PixelRNNError

        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                status = call()
        except (PixelRNNError, UserError) as error:
            kind = "one line" if len(str(error).strip().splitlines()) == 1 else "traceback"
            self._count(family, kind, describe, str(error))
            return
        except SystemExit as stop:  # argparse: a usage line and one error line
            self._count(family, "one line" if stop.code == 2 else "traceback", describe, stderr.getvalue().strip()[-200:])
            return
        except Exception:  # noqa: BLE001 - what the fuzz looks for
            self._count(family, "traceback", describe, " | ".join(traceback.format_exc().strip().splitlines()[-3:]))
            return
        if isinstance(status, int) and status == 2:
            lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
            kind = "one line" if len(lines) == 1 else "traceback"
            self._count(family, kind, describe, stderr.getvalue().strip())
        elif status in (0, None) or not isinstance(status, int):
            self._count(family, "ok", describe, "")
        else:
            self._count(family, "traceback", describe, f"exit {status}: {stderr.getvalue()[-300:]}")

    def _count(self, family, kind, describe, detail):
        self.counts[family, kind] += 1
        if len(self.examples[family, kind]) < 3:
            self.examples[family, kind].append(f"{describe} -> {detail[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import dataclasses

    import numpy as np
    import torch
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fixed_seed
    from hypothesis import strategies as st

    import pixelrnn.cli.codec as codec_cli
    import pixelrnn.cli.generate as generate_cli
    import pixelrnn.cli.train as train_cli
    from pixelrnn.cli import main as cli
    from pixelrnn.config import ModelConfig
    from pixelrnn.models.weights import check_config_limits
    from pixelrnn.training import RunFolder, build_run_config
    from pixelrnn.training.run_config import DataConfig, TrainConfig

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="config-fuzz-"))
    os.environ["PIXELRNN_CACHE_DIR"] = str(work / "cache")
    run = work / "run"
    assert cli(["train", "--dataset", "digits", "--arch", "pixelcnn", "--set", "model.hidden=2", "--set", "model.layers=1",
                "--set", "model.output_hidden=2", "--set", "train.eval_images=8", "--steps", "1", "--out", str(run), "-q"]) == 0
    pristine = (run / "config.json").read_text()
    # The heavy work replaced by stubs: the checks before it are what is fuzzed.
    generate_cli.sample = lambda model, n, height, width, **_: torch.zeros(n, model.config.channels, height, width, dtype=torch.long)
    generate_cli.complete = lambda model, images, keep, **_: images
    train_cli.evaluate_images = lambda model, images, **_: {"nats_per_image": 1.0, "nats_per_image_stderr": 0.0, "bits_per_dim": 1.0,
                                                            "bits_per_dim_stderr": 0.0, "images": len(images)}
    codec_cli.compress = lambda model, images, **_: b"PXRNNCMP"
    outcomes = Outcomes()
    deadline = time.monotonic() + 60 * args.minutes
    keys = ([f"train.{f.name}" for f in dataclasses.fields(TrainConfig)] + [f"data.{f.name}" for f in dataclasses.fields(DataConfig)]
            + [f"model.{f.name}" for f in dataclasses.fields(ModelConfig)] + ["model.preset", "model.factor", "train", "model", "x.y"])

    def resolve(overrides):
        config = build_run_config(None, overrides, **{"data.dataset": "digits", "model.arch": "pixelcnn"})
        check_config_limits(config.model_config(1, 17), "the run configuration")

    @st.composite
    def case(draw):
        family = draw(st.sampled_from(["override", "config file", "run folder", "flags"]))
        return family, draw(st.lists(st.tuples(st.sampled_from(keys), values()), min_size=1, max_size=4)), draw(values()), \
            draw(st.sampled_from(["evaluate", "sample", "complete", "compress", "decompress"])), \
            draw(st.lists(st.one_of(st.integers(-10, 10), st.integers(-2**40, 2**40), st.floats(allow_nan=True)), min_size=3, max_size=3))

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case())
    def fuzz(drawn):
        if time.monotonic() > deadline:
            return
        family, pairs, raw, command, numbers = drawn
        if family == "override":
            overrides = [f"{key}={toml_value(value)}" for key, value in pairs]
            outcomes.run(family, lambda: resolve(overrides), " ".join(overrides)[:200])
        elif family == "config file":
            table = {}
            for key, value in pairs:
                section, _, name = key.partition(".")
                table.setdefault(section, {})
                if isinstance(table[section], dict) and name:
                    table[section][name] = value
                else:
                    table[section] = value
            path = work / "fuzz.json"
            path.write_text(json.dumps(table, default=str))
            outcomes.run(family, lambda: build_run_config(path, [], **{"data.dataset": "digits"}), path.read_text()[:200])
        elif family == "run folder":
            text = json.dumps(raw, default=str) if not isinstance(raw, int) or raw >= 0 else "[" * 50_000 + "]" * 50_000
            (run / "config.json").write_text(text)
            try:
                outcomes.run(family, lambda: RunFolder(run).resume_config(), text[:120])
                outcomes.run(family, lambda: cli(["evaluate", str(run), "--limit", "1", "-q"]), text[:120])
            finally:
                (run / "config.json").write_text(pristine)
        else:
            a, b, c = (str(int(x)) if isinstance(x, int) else repr(x) for x in numbers)
            out = work / "out"
            argv = {"evaluate": ["evaluate", str(run), "--batch-size", a, "--limit", b, "-q"],
                    "sample": ["sample", str(run), "-n", a, "--height", b, "--width", "4", "--scale", c, "--temperature", b,
                               "--out", str(out / "s.png"), "--force", "-q"],
                    "complete": ["complete", str(run), "--dataset", "digits", "--index", a, "--keep-rows", b, "-k", c,
                                 "--out", str(out / "c.png"), "--force", "-q"],
                    "compress": ["compress", str(run), "--dataset", "digits", "--limit", a, "--batch-size", b,
                                 "-o", str(out / "a.pxr"), "--force", "-q"],
                    "decompress": ["decompress", str(run), str(out / "missing.pxr"), "-o", str(out / b), "-q"]}[command]
            outcomes.run(f"flags {command}", lambda: cli(argv), " ".join(argv[2:])[:200])

    started, rounds = time.monotonic(), 0
    while time.monotonic() < deadline:  # rounds of 200 cases, each from its own seed: seed, seed + 1, ...
        fixed_seed(args.seed + rounds)(fuzz)()
        rounds += 1
    seconds = time.monotonic() - started
    families = sorted({family for family, _ in outcomes.counts})
    print(f"config and flag fuzz: seed {args.seed}, {seconds / 60:.1f} minutes, python {sys.version.split()[0]}, "
          f"numpy {np.__version__}, torch {torch.__version__}")
    print(f"{'family':22s} {'cases':>7s} {'ok':>7s} {'one line':>9s} {'traceback':>10s}")
    total = collections.Counter()
    for family in families:
        row = {kind: outcomes.counts[family, kind] for kind in ("ok", "one line", "traceback")}
        total.update(row)
        print(f"{family:22s} {sum(row.values()):7d} {row['ok']:7d} {row['one line']:9d} {row['traceback']:10d}")
    print(f"{'all':22s} {sum(total.values()):7d} {total['ok']:7d} {total['one line']:9d} {total['traceback']:10d}")
    for (family, kind), examples in sorted(outcomes.examples.items()):
        if kind != "ok":
            for example in examples[:2 if kind == "one line" else 3]:
                print(f"  [{family} / {kind}] {example}")
    return 1 if total["traceback"] else 0


if __name__ == "__main__":
    sys.exit(main())
