"""Write the golden fixtures of tests/golden/files/: model files, compressed files, integer logits and samples.

This script was run ONCE, at commit 71f8e7accf5eef7eb1e01739d2810bfbfc0ef338 (recorded in
``files/manifest.json`` as ``generated_at_commit``), and its output was committed. The files pin
the behaviour of that commit bit for bit:

- the compressed file format and the integer coding model (``pixelrnn.codec``): each ``.pxrnn``
  file must still decode to the stored images, and re-encoding them must give the same bytes;
- the integer logits of every model (``integer_logits(integer_model(model), images)``);
- the samples that a fixed seed draws, with the native engine and with the reference engine.

Do NOT rerun this script to "fix" a failing golden test. A failing test means that files written
or samples drawn by earlier versions are no longer reproduced. If a change of bytes is intended,
it needs a new format version (``pixelrnn.codec.container.VERSION``) or a new integer model
definition (``pixelrnn.codec.fixed_point.DEFINITION``), with the old files still readable, and
new fixtures added beside these ones (a new folder), never written over them. The script refuses
to write into a folder that already holds fixtures unless given ``--overwrite``.

The one exception is a bundled model replaced by better weights on purpose: its fixtures (and
only its) are rewritten with ``--replace-bundled``, in the commit that replaces the weights, and
the manifest's ``replaced`` list records which, when and why. Every other file stays as written.

Run from the repository root, with the package of this checkout importable::

    PYTHONPATH=. python tests/golden/make_golden.py [--out tests/golden/files] [--overwrite]
    PYTHONPATH=. python tests/golden/make_golden.py --replace-bundled binarized_mnist/row_lstm --reason "..."
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import pixelrnn  # noqa: E402
from pixelrnn import build_model, from_pretrained, load_model, native, save_model  # noqa: E402
from pixelrnn.codec import compress, decompress, images_from_array, integer_logits, integer_model, read_container  # noqa: E402
from pixelrnn.hub import BUNDLED, bundled_folder  # noqa: E402
from pixelrnn.sampling import NATIVE_ENGINES, make_engine, sample  # noqa: E402

FILES = Path(__file__).resolve().parent / "files"
BATCH_SIZE = 4  # every compressed file: batch size stored in its header
IMAGE_COUNT = 2
SAMPLE_COUNT = 2
SAMPLE_DTYPE = "float64"  # the models sample in float64: far from any rounding flip between CPUs
LOGITS_IMAGES = 1  # images whose 256-level integer logits are stored (all images' are pinned by a sha256)
PERTURBATION = 0.3  # seeded normal noise added to every parameter after the initialisation

#: (channels, levels) -> image (and sample) height, width, and the network's sizes.
KINDS = {
    (1, 2): dict(height=8, width=7, hidden=4, output_hidden=8, input_kernel=5),
    (3, 256): dict(height=6, width=5, hidden=6, output_hidden=8, input_kernel=3),
}
ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
#: Bundled models: the images they compress and the samples they draw.
BUNDLED_IMAGES = (28, 28)
BUNDLED_SAMPLES = (28, 28)  # smaller top-left crops draw only background


def small_specs() -> list[dict]:
    specs = []
    for arch in ARCHS:
        for (channels, levels), kind in KINDS.items():
            for residual_skip in (True, False):
                name = f"{arch}-c{channels}-k{levels}-{'resskip' if residual_skip else 'plain'}"
                specs.append(dict(id=name, kind="small", arch=arch, channels=channels, levels=levels,
                                  residual=residual_skip, skip=residual_skip, **kind))
    for index, spec in enumerate(specs):
        spec["seed"] = 1000 + index
    return specs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(*arguments: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *arguments], check=True, capture_output=True, text=True).stdout.strip()


def build_small(spec: dict) -> torch.nn.Module:
    """A seeded two-layer network, its every parameter moved off the initialisation by seeded noise."""
    torch.manual_seed(spec["seed"])
    model = build_model(spec["arch"], channels=spec["channels"], levels=spec["levels"], hidden=spec["hidden"], layers=2,
                        output_hidden=spec["output_hidden"], input_kernel=spec["input_kernel"], conv_kernel=3, row_kernel=3,
                        residual=spec["residual"], skip=spec["skip"])
    noise = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for _, parameter in sorted(model.named_parameters()):
            parameter.add_(torch.randn(parameter.shape, generator=noise, dtype=parameter.dtype) * PERTURBATION)
    return model.eval()


def draw(model, seed: int, shape: tuple[int, int], engine: str) -> np.ndarray:
    """``sample`` with a generator seeded ``seed``: the native engine (the default) or the reference one."""
    model = copy.deepcopy(model).to(getattr(torch, SAMPLE_DTYPE))
    generator = torch.Generator().manual_seed(seed)
    if engine == "native":
        assert type(make_engine(model)) in NATIVE_ENGINES.values(), "the native engine does not run here"
        drawn = sample(model, SAMPLE_COUNT, *shape, generator=generator)
    else:
        with native.disabled():
            drawn = sample(model, SAMPLE_COUNT, *shape, generator=generator)
    assert drawn.dtype == torch.long and int(drawn.min()) >= 0 and int(drawn.max()) < model.config.levels
    return drawn.numpy().astype(np.uint8)


def exact_integers(logits: torch.Tensor) -> np.ndarray:
    values = logits.numpy()
    assert values.dtype == np.float64 and np.array_equal(values, np.round(values)) and np.abs(values).max() < 2.0**53
    converted = values.astype(np.int64)
    assert np.array_equal(converted.astype(np.float64), values)
    return converted


def write_entry(spec: dict, bundled: str | None, out: Path, images: dict, logits: dict, samples: dict, descriptions: dict) -> dict:
    """One model's fixtures: its checkpoint (small models), compressed file, integer logits and samples."""
    key = spec["id"]
    rng = np.random.default_rng(spec["seed"])
    if bundled is None:
        checkpoint = f"{key}.safetensors"
        save_model(build_small(spec), out / checkpoint, metadata={"golden": key})
        model = load_model(out / checkpoint)  # the model as the tests will read it: float32, eval mode
        spec.update(checkpoint=checkpoint)
        image_shape = sample_shape = (spec["height"], spec["width"])
        descriptions[checkpoint] = f"model {key}: {spec['arch']}, {spec['channels']} channel(s), {spec['levels']} levels, " \
                                   f"residual={spec['residual']}, skip={spec['skip']} (save_model checkpoint, float32)"
    else:
        model = from_pretrained(bundled)
        image_shape, sample_shape = BUNDLED_IMAGES, BUNDLED_SAMPLES
    config = model.config
    if config.levels == 2:  # sparse like binarized digits for the bundled models, half and half for the small ones
        density = 0.2 if bundled else 0.5
        values = (rng.random((IMAGE_COUNT, config.channels, *image_shape)) < density).astype(np.uint8)
    else:
        values = rng.integers(0, config.levels, size=(IMAGE_COUNT, config.channels, *image_shape), dtype=np.uint8)
    images[key] = values

    coded = images_from_array(values, config.levels)
    data = compress(model, coded, batch_size=BATCH_SIZE)
    container = read_container(data)
    assert container.arithmetic == "integer" and container.batch_size == BATCH_SIZE
    decoded = decompress(model, data)
    assert all(np.array_equal(a.values, b.values) and (a.name, a.mode, a.mapping) == (b.name, b.mode, b.mapping)
               for a, b in zip(decoded, coded))
    with native.disabled():
        assert compress(model, coded, batch_size=BATCH_SIZE) == data
    compressed = f"{key}.pxrnn"
    (out / compressed).write_bytes(data)
    descriptions[compressed] = f"images['{key}'] compressed with model {key} (integer arithmetic, batch size {BATCH_SIZE})"

    found = exact_integers(integer_logits(integer_model(model), values))
    # 256-level logits are large and barely compressible: the first image's are stored, all images' sha256.
    stored = found[:LOGITS_IMAGES] if config.levels > 2 else found
    logits[key] = stored
    spec.update(logits_images=len(stored), logits_sha256=hashlib.sha256(found.astype("<i8").tobytes()).hexdigest())
    sample_seed = spec["seed"] + 500
    for engine in ("native", "reference"):
        samples[f"{key}.{engine}"] = draw(model, sample_seed, sample_shape, engine)
    same = bool(np.array_equal(samples[f"{key}.native"], samples[f"{key}.reference"]))
    spec.update(images=key, compressed=compressed, batch_size=BATCH_SIZE, logits=key, sample_seed=sample_seed,
                sample_shape=[SAMPLE_COUNT, config.channels, *sample_shape], sample_dtype=SAMPLE_DTYPE,
                native_equals_reference=same, fingerprint=container.fingerprint.hex(), compressed_bytes=len(data))
    print(f"{key}: {len(data)} bytes, native == reference samples: {same}", flush=True)
    return spec


def replace_bundled(out: Path, names: list[str], reason: str) -> None:
    """Rewrite the fixtures of the bundled models ``names`` only (new weights shipped on purpose); every other stays as written."""
    manifest = json.loads((out / "manifest.json").read_text())
    entries = {entry["id"]: entry for entry in manifest["models"]}
    ids = [name.replace("/", "-") for name in names]
    unknown = [key for key in ids if entries.get(key, {}).get("kind") != "bundled"]
    if unknown:
        sys.exit(f"not bundled models of {out}/manifest.json: {', '.join(unknown)}")
    arrays = {}
    for name in ("images.npz", "integer_logits.npz", "samples.npz"):
        with np.load(out / name) as found:
            arrays[name] = {key: found[key] for key in found.files}
    descriptions = dict(manifest["files"])
    for key, name in zip(ids, names):
        entry = entries[key]
        spec = dict(id=key, kind="bundled", name=name, seed=entry["seed"], weights_sha256=sha256(bundled_folder(name) / "model.safetensors"))
        entries[key] = write_entry(spec, name, out, arrays["images.npz"], arrays["integer_logits.npz"], arrays["samples.npz"], descriptions)
    for name, values in arrays.items():
        np.savez_compressed(out / name, **values)
    hashes = {name: sha256(out / name) for name in sorted(descriptions) if name != "sha256.json"}
    (out / "sha256.json").write_text(json.dumps(hashes, indent=2) + "\n")
    manifest["models"] = [entries[entry["id"]] for entry in manifest["models"]]
    manifest.setdefault("replaced", []).append({"ids": ids, "at_commit": git("rev-parse", "HEAD"), "reason": reason})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"rewrote the fixtures of {', '.join(ids)} in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=FILES)
    parser.add_argument("--overwrite", action="store_true", help="write over existing fixtures (read the module docstring first)")
    parser.add_argument("--replace-bundled", metavar="NAME,NAME", help="rewrite only these bundled models' fixtures: their new weights are shipped on purpose")
    parser.add_argument("--reason", default="", help="with --replace-bundled: why the weights changed, recorded in the manifest")
    args = parser.parse_args()
    out: Path = args.out
    if args.replace_bundled:
        if not args.reason:
            sys.exit("--replace-bundled needs --reason: the manifest records why the bundled weights changed")
        torch.set_num_threads(1)
        replace_bundled(out, args.replace_bundled.split(","), args.reason)
        return
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        sys.exit(f"{out} already holds golden fixtures; they must not be regenerated (see this script's docstring)")
    out.mkdir(parents=True, exist_ok=True)
    if native.library() is None:
        sys.exit("the native kernels cannot be built here; the native engine's samples need them")
    torch.set_num_threads(1)

    images, logits, samples, models, descriptions = {}, {}, {}, [], {}
    entries = [(spec, None) for spec in small_specs()]
    for index, name in enumerate(BUNDLED):
        folder = bundled_folder(name)
        entries.append((dict(id=name.replace("/", "-"), kind="bundled", name=name, seed=2000 + index,
                             weights_sha256=sha256(folder / "model.safetensors")), name))
    for spec, bundled in entries:
        models.append(write_entry(spec, bundled, out, images, logits, samples, descriptions))

    np.savez_compressed(out / "images.npz", **images)
    np.savez_compressed(out / "integer_logits.npz", **logits)
    np.savez_compressed(out / "samples.npz", **samples)
    descriptions["images.npz"] = "uint8 images (N, C, H, W) per model id: the images of the compressed files"
    descriptions["integer_logits.npz"] = ("int64 integer logits (N, C, K, H, W) per model id, of its images (integers at 2^-G): "
                                          "every image for 2 levels, the first logits_images for 256 (models[].logits_sha256: "
                                          "sha256 of all images' logits as little-endian int64 in C order)")
    descriptions["samples.npz"] = (f"uint8 samples (N, C, H, W), '<id>.native' and '<id>.reference': sample(model in "
                                   f"{SAMPLE_DTYPE}, n, H, W, generator=torch.Generator().manual_seed(sample_seed)) with the native "
                                   "engine (default) and with native.disabled()")
    fixtures = sorted(name for name in descriptions)
    hashes = {name: sha256(out / name) for name in fixtures}
    (out / "sha256.json").write_text(json.dumps(hashes, indent=2) + "\n")
    manifest = {
        "generated_at_commit": git("rev-parse", "HEAD"),
        "package_tree_clean": git("status", "--porcelain", "--", "pixelrnn") == "",
        "torch": torch.__version__, "numpy": np.__version__, "constriction": version("constriction"),
        "python": platform.python_version(), "machine": platform.machine(), "isa": torch.backends.cpu.get_cpu_capability(),
        "package": str(Path(pixelrnn.__file__).parent.relative_to(ROOT)),
        "note": "Generated once by make_golden.py; never regenerate to make a test pass (see its docstring).",
        "files": {"sha256.json": "sha256 of every other fixture file", **descriptions},
        "models": models,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(path.stat().st_size for path in out.iterdir())
    print(f"{len(list(out.iterdir()))} files, {total} bytes in {out}")


if __name__ == "__main__":
    main()
