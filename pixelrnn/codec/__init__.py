"""Lossless image compression with a trained network and a range coder (paper section 5.1).

- :mod:`.container`: the file format, written and parsed with bounded reads;
- :mod:`.coding_model`: a model's fingerprint and its conditionals as integer frequencies;
- :mod:`.coder`: :func:`compress` and :func:`decompress`, one raster loop for both;
- :mod:`.files`: image files in, the same files out;
- :mod:`.stats`: achieved bits/dim against the model's NLL.
"""

from ..errors import CompressionError
from ..images import image_files, samples_to_values
from .coder import EnvironmentWarning, compress, decompress, environment_differences
from .coding_model import chunks, code_lengths, environment, model_fingerprint, quantise
from .container import DEFAULT_BATCH_SIZE, MAX_BATCH, CodedImage, Container, build_container, check_name, read_container
from .files import image_from_file, images_from_array, save_images, values_to_png
from .stats import compression_stats, model_nll_bits

__all__ = [
    "DEFAULT_BATCH_SIZE", "MAX_BATCH", "CodedImage", "CompressionError", "Container", "EnvironmentWarning", "build_container",
    "check_name", "chunks", "code_lengths", "compress", "compression_stats", "decompress", "environment",
    "environment_differences", "image_files", "image_from_file", "images_from_array", "model_fingerprint",
    "model_nll_bits", "quantise", "read_container", "samples_to_values", "save_images", "values_to_png",
]
