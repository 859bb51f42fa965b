"""Lossless image compression with a trained network and a range coder (paper section 5.1).

- :mod:`.container`: the file format, written and parsed with bounded reads;
- :mod:`.fixed_point`: the integer coding model's arithmetic (formats, exact sums, tables, frequencies);
- :mod:`.integer_model`: a network's integer coding model, its bounds and fingerprint;
- :mod:`.integer_batched` / :mod:`.integer_numpy_engines`: its batched pass and its incremental engines;
- :mod:`.coding_model`: the integer and the float coding model, as the coder uses them;
- :mod:`.coder`: :func:`compress` and :func:`decompress`, one raster loop for both;
- :mod:`.files`: image files in, the same files out (or an npz of the values);
- :mod:`.stats`: achieved bits/dim against the model's NLL.
"""

from ..errors import CompressionError, DamagedFileError, PlatformError, WrongModelError
from ..images import image_files, samples_to_values
from .coder import EnvironmentWarning, compress, decompress, environment_differences
from .coding_model import ARITHMETIC_CHOICES, chunks, code_lengths, environment, model_fingerprint, quantise
from .container import DEFAULT_BATCH_SIZE, MAX_BATCH, CodedImage, Container, build_container, check_name, read_container
from .files import image_from_file, image_path, images_from_array, save_images, save_npz, values_to_png
from .fixed_point import FixedPoint
from .integer_batched import integer_logits
from .integer_model import IntegerModel, integer_model
from .stats import compression_stats, model_nll_bits

__all__ = [
    "ARITHMETIC_CHOICES", "DEFAULT_BATCH_SIZE", "MAX_BATCH", "CodedImage", "CompressionError", "Container", "DamagedFileError",
    "EnvironmentWarning", "FixedPoint", "IntegerModel", "PlatformError", "WrongModelError", "build_container", "check_name",
    "chunks", "code_lengths", "compress", "compression_stats", "decompress", "environment", "environment_differences",
    "image_files", "image_from_file", "image_path", "images_from_array", "integer_logits", "integer_model", "model_fingerprint",
    "model_nll_bits", "quantise", "read_container", "samples_to_values", "save_images", "save_npz", "values_to_png",
]
