"""Run under torchrun by tests/training/test_distributed.py: train a tiny model, save this rank's weights.

``python ddp_worker.py DATA.npz RUN_DIR STEPS [cached] [resume] [labelled]``: with ``cached`` the images come
memory-mapped from the prepared cache (``load_dataset("npz:...")``) and every batch this rank reads
is recorded in ``rank<R>-batches.json``; with ``resume`` the run in RUN_DIR is continued; with ``labelled``
(and ``cached``) the network is class-conditional (``model.classes=auto``) and trains on the npz's labels.
"""

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

from pixelrnn.data import load_dataset
from pixelrnn.training import BatchLoader, Trainer, build_run_config


def tiny_run_config(steps: int, *extra: str):
    """The run both the 2-process and the 1-process side of tests/test_distributed.py train."""
    return build_run_config(None, [*extra, f"train.steps={steps}", "train.batch_size=8", "train.log_every=1", "train.eval_every=2",
                                   "train.checkpoint_every=100", "train.optimizer='adam'", "train.lr=3e-3", "train.ema_decay=0.9",
                                   "model.hidden=4", "model.layers=2", "model.output_hidden=8"],
                            **{"model.arch": "row_lstm", "data.dataset": "tiny"})


def record_batches(path: str) -> None:
    """Append (step, rows, pixel sum) of every batch this process gathers to ``path``."""
    assemble = BatchLoader.assemble

    def recording(loader, step):
        batch = assemble(loader, step)
        rows = loader.order.share(step, loader.rank, loader.world_size).tolist()
        with open(path, "a") as handle:
            handle.write(json.dumps({"step": step, "rows": rows, "sum": int(batch.sum())}) + "\n")
        return batch

    BatchLoader.assemble = recording


if __name__ == "__main__":
    data_path, run_dir, steps, options = sys.argv[1], sys.argv[2], int(sys.argv[3]), set(sys.argv[4:])
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    labels, extra = {}, ()
    if "cached" in options:
        sets = [load_dataset(f"npz:{data_path}", split, progress=False) for split in ("train", "valid")]
        train, valid = (s.images for s in sets)
        if "labelled" in options:
            labels, extra = {"train_labels": sets[0].labels, "valid_labels": sets[1].labels}, ("model.classes='auto'",)
        record_batches(os.path.join(run_dir, f"rank{rank}-batches.jsonl"))
    else:
        arrays = np.load(data_path)
        train, valid = arrays["train"], arrays["valid"]
    trainer = Trainer(tiny_run_config(steps, *extra), run_dir, train, valid, 4, progress=False, resume="resume" in options, **labels)
    trainer.train()
    save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, os.path.join(run_dir, f"rank{rank}.safetensors"))
    with open(os.path.join(run_dir, f"rank{rank}.json"), "w") as handle:
        json.dump({"world_size": trainer.dist.world_size, "device": str(trainer.device),
                   "memory_mapped": isinstance(trainer.train_images, np.memmap)}, handle)
