"""Run by tests/codec/test_platforms.py in a process with one platform setting.

Decodes every integer file of the folder, computes the float models' logits (the batched pass
and the float engine, as the float coder runs it) and tries the float files; writes the results.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from pixelrnn.checkpoint import load_model
from pixelrnn.codec import CompressionError, decompress
from pixelrnn.sampling import make_engine


def float_logits(model, images: np.ndarray) -> dict[str, np.ndarray]:
    """The batched pass over all positions, and the engine over the first row (teacher-forced)."""
    count, channels, _, width = images.shape
    with torch.no_grad():
        batched = model(torch.from_numpy(images)).double().numpy()
        engine = make_engine(model)
        engine.reset(count, *images.shape[2:])
        row = []
        for j in range(width):
            for c in range(channels):
                row.append(engine.logits(0, j, c).double().numpy())
                engine.advance(0, j, c, torch.from_numpy(images[:, c, 0, j]))
    return {"batched": batched, "engine": np.stack(row)}


if __name__ == "__main__":
    folder, out, threads, default_dtype = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    torch.set_default_dtype(getattr(torch, default_dtype))
    listing = json.loads((folder / "cases.json").read_text())
    arrays, float_files = {}, {}
    for name in listing["integer"]:
        model = load_model(folder / f"{name}.safetensors")
        decoded = decompress(model, (folder / f"{name}.pxr").read_bytes(), threads=threads)
        arrays.update({f"decoded/{name}/{k}": image.values for k, image in enumerate(decoded)})
    probe_images = np.load(folder / "probe_images.npy")
    for name in listing["probe"]:
        model = load_model(folder / f"{name}.safetensors").eval()
        for kind, logits in float_logits(model, probe_images).items():
            arrays[f"probe/{name}/{kind}"] = logits
        try:
            decompress(model, (folder / f"{name}.float.pxr").read_bytes())
            float_files[name] = "decoded"
        except CompressionError as error:
            float_files[name] = f"{type(error).__name__}: {error}"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "results.npz", **arrays)
    (out / "float_files.json").write_text(json.dumps(float_files))
