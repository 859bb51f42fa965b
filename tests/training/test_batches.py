"""Batches: the shares of all processes make the single-process batch, gathered ahead in a thread, from a memory map."""

import mmap
import os
import threading

import numpy as np
import pytest
import torch

from pixelrnn.training import BatchLoader, BatchOrder, Trainer, TrainingError, build_run_config


@pytest.fixture
def images(tmp_path):
    """40 images 1x3x2 in a read-only memory map; image i holds the value i everywhere."""
    path = tmp_path / "images.npy"
    np.save(path, np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1).repeat(3, 2).repeat(2, 3))
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("world_size", [1, 2, 4])
@pytest.mark.parametrize("first_step", [0, 3, 11])
def test_the_shares_of_all_processes_make_the_single_process_batch(images, world_size, first_step):
    order = BatchOrder(len(images), 8, seed=3)
    loaders = [BatchLoader(images, order if rank == 0 else BatchOrder(len(images), 8, seed=3), first_step,
                           rank=rank, world_size=world_size) for rank in range(world_size)]
    try:
        for step in range(first_step, first_step + 7):  # crosses epochs of 5 steps
            shares = [loader.batch(step) for loader in loaders]
            assert all(share.dtype == torch.int64 and share.shape == (8 // world_size, 1, 3, 2) for share in shares)
            joined = torch.cat(shares)
            assert torch.equal(joined[:, 0, 0, 0], BatchOrder(len(images), 8, seed=3).indices(step))
            assert torch.equal(joined, torch.from_numpy(np.array(images))[order.indices(step)].long())
    finally:
        for loader in loaders:
            loader.close()


def test_batches_are_gathered_ahead_in_another_thread(images):
    gathered, two_ahead = [], threading.Event()

    class Recording(BatchLoader):
        def assemble(self, step):
            gathered.append((step, threading.current_thread() is threading.main_thread()))
            if len(gathered) == 3:
                two_ahead.set()
            return super().assemble(step)

    loader = Recording(images, BatchOrder(len(images), 4, seed=0), 5, ahead=2)
    try:
        loader.batch(5)
        assert two_ahead.wait(timeout=30)  # steps 6 and 7 were gathered before anyone asked for them
        assert [step for step, _ in gathered[:3]] == [5, 6, 7] and not any(main for _, main in gathered)
        with pytest.raises(TrainingError, match="step 9 asked for; the loader is at step 6"):
            loader.batch(9)
    finally:
        loader.close()
    assert not loader._thread.is_alive()


def test_an_error_while_gathering_reaches_the_training_loop(images):
    class Failing(BatchLoader):
        def assemble(self, step):
            if step == 2:
                raise OSError("disk gone")
            return super().assemble(step)

    loader = Failing(images, BatchOrder(len(images), 4, seed=0), 0)
    loader.batch(0), loader.batch(1)
    with pytest.raises(OSError, match="disk gone"):
        loader.batch(2)
    loader.close()


def test_the_trainer_reads_a_memory_map_in_place(images, tmp_path):
    config = build_run_config(None, ["train.steps=2", "train.batch_size=4", "train.eval_every=100", "train.checkpoint_every=100",
                                     "model.hidden=4", "model.layers=1", "model.output_hidden=8"],
                              **{"model.arch": "pixelcnn", "data.dataset": "tiny"})
    trainer = Trainer(config, tmp_path / "run", images, images[30:], 40, progress=False)
    assert trainer.train_images is images and np.shares_memory(trainer.valid_images, images)
    assert trainer.train().step == 2
    assert trainer._loader is None  # the loader's thread was stopped with the run


def resident_bytes_of_mappings(suffix: str) -> int:
    """Resident bytes of this process's mappings of files whose path ends in ``suffix`` (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as handle:
        for line in handle:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line
                inside = len(fields) >= 6 and fields[5].endswith(suffix)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


@pytest.mark.skipif(not (hasattr(mmap, "MADV_DONTNEED") and os.path.exists("/proc/self/smaps")),
                    reason="needs madvise and /proc/self/smaps (Linux)")
def test_the_loader_lets_go_of_the_pages_it_read(tmp_path):
    path = tmp_path / "let-go.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (600, 3, 16, 16), dtype=np.uint8))
    images = np.load(path, mmap_mode="r")
    loader = BatchLoader(images[:500], BatchOrder(500, 20, seed=1), 0)
    batches = [loader.batch(step) for step in range(30)]
    loader.close()
    assert resident_bytes_of_mappings("let-go.npy") == 0  # in the page cache, shared; not in this process
    assert torch.equal(batches[-1], torch.from_numpy(np.array(images))[BatchOrder(500, 20, seed=1).indices(29)].long())
    np.asarray(images[:100]).sum()
    assert resident_bytes_of_mappings("let-go.npy") > 0  # the measure sees pages that are read
