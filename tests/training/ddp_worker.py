"""Run under torchrun by tests/test_distributed.py: train a tiny model, save this rank's weights."""

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

from pixelrnn.training import build_run_config
from pixelrnn.training import Trainer


def tiny_run_config(steps: int):
    """The run both the 2-process and the 1-process side of tests/test_distributed.py train."""
    return build_run_config(None, [f"train.steps={steps}", "train.batch_size=8", "train.log_every=1", "train.eval_every=2",
                                   "train.checkpoint_every=100", "train.optimizer='adam'", "train.lr=3e-3", "train.ema_decay=0.9",
                                   "model.hidden=4", "model.layers=2", "model.output_hidden=8"],
                            **{"model.arch": "row_lstm", "data.dataset": "tiny"})


if __name__ == "__main__":
    data_path, run_dir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    arrays = np.load(data_path)
    trainer = Trainer(tiny_run_config(steps), run_dir, arrays["train"], arrays["valid"], 4, progress=False)
    trainer.train()
    rank = int(os.environ["RANK"])
    save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, os.path.join(run_dir, f"rank{rank}.safetensors"))
    with open(os.path.join(run_dir, f"rank{rank}.json"), "w") as handle:
        json.dump({"world_size": trainer.dist.world_size, "device": str(trainer.device)}, handle)
