"""A small file cannot ask decompress for gigabytes: sub-pixels per chunk and in total are bounded first."""

import resource
import subprocess
import sys

import numpy as np
import pytest

from pixelrnn import load_model_from
from pixelrnn.codec import CodedImage, compress, decompress, read_container
from pixelrnn.codec.container import build_container
from pixelrnn.errors import CompressionError
from pixelrnn.limits import using_limits

PRETRAINED = "pretrained:binarized_mnist/pixelcnn"


@pytest.fixture(scope="module")
def model():
    return load_model_from(PRETRAINED)


def crafted(model, runs=1, count=4096, height=1, width=4096, batch=4096, chunk=1 << 24) -> bytes:
    """The issue's file: a real file's coding model and payload under a resealed header of
    ``count`` images of ``height`` x ``width`` in ``runs`` runs, batch 4096, chunk 2**24."""
    real = read_container(compress(model, [CodedImage("a.png", np.zeros((1, 2, 2), np.uint8), "L", "raw")]))
    per_run = count // runs
    images = [CodedImage(f"{k:05d}.png", np.zeros((1, height, width + (k // per_run) % 2), np.uint8), "L", "raw")
              for k in range(count)]
    return build_container(fingerprint=real.fingerprint, arithmetic=real.arithmetic, fixed_point=real.fixed_point,
                           batch_size=batch, chunk_pixels=chunk, channels=1, levels=2, environment={},
                           pixel_digest=real.pixel_digest, images=images, payload=real.payload)


def test_a_small_file_asking_for_a_huge_chunk_is_refused_before_allocating(model):
    """Issue 24, failure 4: a resealed header of a few hundred bytes asked for 4.25 GiB."""
    data = crafted(model)
    assert len(data) < 1000
    with pytest.raises(CompressionError, match="chunk_subpixels|CHUNK_SUBPIXELS"):
        decompress(model, data)


def test_the_total_is_bounded_too(model):
    data = crafted(model, count=64, width=64, batch=1, chunk=64)
    with using_limits(file_subpixels=1000), pytest.raises(CompressionError, match="FILE_SUBPIXELS"):
        decompress(model, data)


def test_compress_writes_no_file_that_decompress_would_refuse(model):
    images = [CodedImage("a.png", np.zeros((1, 64, 64), np.uint8), "L", "raw")]
    with using_limits(chunk_subpixels=1000), pytest.raises(CompressionError, match="CHUNK_SUBPIXELS"):
        compress(model, images)


def _address_limit():
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_the_crafted_file_under_an_address_space_limit_is_one_line(model, tmp_path):
    """The command line, under a 3 GiB address-space limit: one line and exit 2, not ArrayMemoryError."""
    path = tmp_path / "crafted.pxr"
    path.write_bytes(crafted(model))
    result = subprocess.run([sys.executable, "-m", "pixelrnn", "decompress", PRETRAINED, str(path), "-o", str(tmp_path / "out"), "-q"],
                            preexec_fn=_address_limit, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and "PIXELRNN_MAX_CHUNK_SUBPIXELS" in result.stderr
    assert not (tmp_path / "out").exists()
