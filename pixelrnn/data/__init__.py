"""Image datasets as uint8 arrays (N, C, H, W): the paper's (section 5) and the user's own.

- :mod:`pixelrnn.data.fetch`: where files are looked for and downloaded, and their checksums;
- :mod:`pixelrnn.data.formats`: parsers of the official file formats;
- :mod:`pixelrnn.data.parts`: how a split is read, part by part (a :class:`~pixelrnn.data.parts.Plan`);
- :mod:`pixelrnn.data.sources`: one plan per dataset, the splits, and :func:`load_dataset`;
- :mod:`pixelrnn.data.local`: the plans of the user's own folders and npz files;
- :mod:`pixelrnn.data.cache`: the prepared cache, one memory-mapped .npy per stored array.
"""

from ..errors import DatasetError
from .fetch import FILES, RemoteFile, data_dir_from_env, default_cache_dir, verify_file
from .formats import parse_amat, parse_cifar_batch, parse_idx_images
from .sources import DATASETS, ImageSet, dataset_splits, load_dataset

__all__ = [
    "DATASETS", "DatasetError", "FILES", "ImageSet", "RemoteFile", "data_dir_from_env", "dataset_splits",
    "default_cache_dir", "load_dataset", "parse_amat", "parse_cifar_batch", "parse_idx_images", "verify_file",
]
