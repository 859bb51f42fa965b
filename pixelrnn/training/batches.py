"""Which images form the batch of a step, and how they reach the device while the model computes (section 5.2).

:class:`BatchOrder`: the batch of step s is a pure function of (seed, s), one seeded permutation
per epoch, so a resumed run reads exactly the batches an uninterrupted one reads, with any number
of processes. Each process takes its contiguous share of the global batch.

:class:`BatchLoader`: a background thread gathers this process's share of the next few batches
from the training images, which may be a read-only memory map of the prepared cache
(:mod:`pixelrnn.data.cache`): only the rows of the batch are read, never the whole array. The
kernel is told that rows come in random order (no reading ahead), and once a batch is copied
the process lets go of the pages it mapped: they stay in the page cache, shared by all
processes, instead of piling up in this one's resident memory (a kernel that caches files in
large folios maps a whole folio, up to megabytes, for one 12 KB row). On CUDA the batch goes
to pinned memory and is copied with ``non_blocking``, so the copy overlaps the work already
queued on the GPU.
"""

from __future__ import annotations

import mmap
import queue
import threading

import numpy as np
import torch

from ..errors import TrainingError


class BatchOrder:
    """Batch ``s`` of a run: one seeded permutation per epoch, incomplete last batches dropped."""

    def __init__(self, count: int, batch_size: int, seed: int):
        if count < batch_size:
            raise TrainingError(f"the training split has {count} images, fewer than batch_size={batch_size}")
        self.count, self.batch_size, self.seed = count, batch_size, seed
        self.per_epoch = count // batch_size
        self._latest = (-1, None)  # (epoch, permutation), one object: a loader thread may read it while another writes

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        cached_epoch, permutation = self._latest
        if epoch != cached_epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            permutation = torch.randperm(self.count, generator=generator)
            self._latest = (epoch, permutation)
        return permutation[position * self.batch_size : (position + 1) * self.batch_size]

    def share(self, step: int, rank: int, world_size: int) -> np.ndarray:
        """The indices process ``rank`` of ``world_size`` trains on at ``step``: its contiguous slice."""
        indices = self.indices(step)
        size = len(indices) // world_size
        return indices[rank * size : (rank + 1) * size].numpy()


class BatchLoader:
    """This process's batches from ``first_step`` on, gathered ``ahead`` steps in advance by a thread.

    ``images`` is any array with numpy indexing, (N, C, H, W) uint8: an ``np.memmap`` is read in
    place; ``labels``, (N,) integers or None, the class of each image (the same rows are taken).
    Steps must be asked for in order; :meth:`close` stops the thread.
    """

    def __init__(self, images, order: BatchOrder, first_step: int, *, rank: int = 0, world_size: int = 1,
                 device: torch.device = torch.device("cpu"), ahead: int = 2, labels=None):
        self.images, self.order, self.rank, self.world_size = images, order, rank, world_size
        self.labels = labels
        self.device = device
        self.pin = device.type == "cuda"
        self._mapping = _file_mapping(images)
        if self._mapping is not None:
            self._mapping.madvise(mmap.MADV_RANDOM)
        self.next_step = first_step
        self._ready: queue.Queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(first_step,), name="pixelrnn-batches", daemon=True)
        self._thread.start()

    def assemble(self, step: int) -> torch.Tensor:
        """The uint8 batch of ``step`` for this process, in host memory (pinned on CUDA)."""
        rows = self.order.share(step, self.rank, self.world_size)
        rows = np.take(self.images, rows, axis=0)  # reads only these rows of a memory map
        batch = torch.from_numpy(rows if rows.dtype == np.uint8 else rows.astype(np.int32))  # uint16 codes above 256 levels
        if self._mapping is not None:
            self._mapping.madvise(mmap.MADV_DONTNEED)  # read-only file pages: unmapped here, kept in the page cache
        return batch.pin_memory() if self.pin else batch

    def assemble_labels(self, step: int) -> torch.Tensor | None:
        """The int64 labels of the batch of ``step`` for this process, or None without labels."""
        if self.labels is None:
            return None
        return torch.from_numpy(np.asarray(np.take(self.labels, self.order.share(step, self.rank, self.world_size)), dtype=np.int64))

    def _fill(self, step: int) -> None:
        while not self._stop.is_set():
            try:
                item = (step, self.assemble(step), self.assemble_labels(step))
            except BaseException as error:  # handed to the training loop, which raises it
                item = (step, error, None)
            self._ready.put(item)
            if isinstance(item[1], BaseException):
                return
            step += 1

    def batch(self, step: int) -> torch.Tensor:
        """The batch of ``step`` on the device, as int64 images."""
        return self.labelled_batch(step)[0]

    def labelled_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch of ``step`` on the device, as int64 images, and its int64 labels (None without labels)."""
        if step != self.next_step:
            raise TrainingError(f"batch of step {step} asked for; the loader is at step {self.next_step}")
        ready_step, batch, labels = self._ready.get()
        if isinstance(batch, BaseException):
            raise batch
        assert ready_step == step, (ready_step, step)
        self.next_step += 1
        return batch.to(self.device, non_blocking=self.pin).long(), None if labels is None else labels.to(self.device)

    def close(self) -> None:
        """Stop the thread; batches gathered ahead are dropped."""
        self._stop.set()
        while self._thread.is_alive():  # a thread blocked on a full queue is released by taking from it
            try:
                self._ready.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()


def _file_mapping(images) -> mmap.mmap | None:
    """The mmap under a read-only memory-mapped array (a split is a view of its stored array), where madvise exists.

    Only read-only maps: dropping the pages of a copy-on-write map would drop its changes.
    """
    if not (isinstance(images, np.memmap) and images.mode == "r"):
        return None
    mapping = images
    while mapping is not None and not isinstance(mapping, mmap.mmap):
        mapping = getattr(mapping, "base", None)
    usable = mapping is not None and all(hasattr(mmap, advice) for advice in ("MADV_RANDOM", "MADV_DONTNEED"))
    return mapping if usable else None
