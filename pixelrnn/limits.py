"""How much a file may make the library build or allocate: the one place the limits are stated.

No section of the paper: this is the library's guard against hostile files. Files from others
(checkpoints, datasets, image files) declare sizes; every reader compares what a file declares
with the bytes it holds, and with these limits, before allocating.

=================  ===========================  ===============================================
limit              default                      bounds
=================  ===========================  ===============================================
``parameters``     250,000,000 (1 GB float32)   the parameters a checkpoint's configuration asks
                                                for, counted before anything is allocated
``layers``         256                          a checkpoint's ``layers``, ``output_layers`` and
                                                log2(``factor``) (the paper's deepest: 15)
``image_pixels``   16,777,216 (4096 x 4096)     height x width of one image: image files,
                                                dataset arrays, a checkpoint's ``image_size``
``decoded_bytes``  2 GiB                        what one compressed stream or archive member
                                                (gzip, zip, tar, npz) may decode to
``compression``    200                          decoded / compressed size of a member that
                                                decodes to more than 64 MiB (zip and gzip bombs)
``chunk_subpixels`` 4,194,304 (2048 x 2048)     sub-pixels of one chunk of a compressed file:
                                                what the coder's engines hold at once (every
                                                layer's state over the chunk), checked before
                                                decoding and before coding
``file_subpixels``  1,073,741,824 (2**30)        sub-pixels of a whole compressed file
=================  ===========================  ===============================================

Raise one deliberately, for files you trust, with the environment variable
``PIXELRNN_MAX_<NAME>`` (``PIXELRNN_MAX_PARAMETERS=1000000000``) or, in code, inside
``with using_limits(parameters=10**9):``. A value that is not a positive integer is a
:class:`ConfigError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
from dataclasses import dataclass

from .errors import ConfigError, PixelRNNError

# Members that decode to less than this are never refused for their compression ratio: the
# ratio guards against bombs, and a small member cannot be one.
RATIO_FREE_BYTES = 64 << 20


@dataclass(frozen=True)
class Limits:
    parameters: int = 250_000_000
    layers: int = 256
    image_pixels: int = 4096 * 4096
    decoded_bytes: int = 2 << 30
    compression: int = 200
    chunk_subpixels: int = 1 << 22
    file_subpixels: int = 1 << 30


UNITS = {"parameters": "parameters", "layers": "layers", "image_pixels": "pixels", "decoded_bytes": "bytes",
         "compression": "times", "chunk_subpixels": "sub-pixels", "file_subpixels": "sub-pixels"}


def variable(name: str) -> str:
    """The environment variable that sets limit ``name``."""
    return f"PIXELRNN_MAX_{name.upper()}"


_chosen: contextvars.ContextVar[dict[str, int]] = contextvars.ContextVar("pixelrnn_chosen_limits", default={})


def _positive(value, source: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{source}={value!r} is not a positive integer")
    return number


def current_limits() -> Limits:
    """The defaults, then the environment variables, then :func:`using_limits` on top."""
    values = {}
    for field in dataclasses.fields(Limits):
        text = os.environ.get(variable(field.name), "").strip()
        if text:
            values[field.name] = _positive(text, variable(field.name))
    values.update(_chosen.get())
    return Limits(**values)


@contextlib.contextmanager
def using_limits(**values: int):
    """Run the block with the named limits set to ``values`` (raise them for files you trust)."""
    known = {field.name for field in dataclasses.fields(Limits)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    token = _chosen.set({**_chosen.get(), **{name: _positive(value, name) for name, value in values.items()}})
    try:
        yield
    finally:
        _chosen.reset(token)


def check_limit(name: str, value: int, what: str, error: type[PixelRNNError]) -> None:
    """Raise ``error`` (one line) when ``value`` exceeds limit ``name``; ``what`` says whose value it is."""
    limit = getattr(current_limits(), name)
    if value > limit:
        raise error(f"{what} is {value:,} {UNITS[name]}, over the limit of {limit:,}; "
                    f"if the file is trusted, raise it with {variable(name)}")


def check_decoded_size(decoded: int, compressed: int, what: str, error: type[PixelRNNError]) -> None:
    """A compressed stream or member that decodes (so far, or by its own account) to ``decoded`` bytes from ``compressed``."""
    check_limit("decoded_bytes", decoded, f"the decoded size of {what}", error)
    if decoded > RATIO_FREE_BYTES:
        check_limit("compression", decoded // max(compressed, 1),
                    f"{what} decodes {compressed:,} bytes to {decoded:,}: its compression ratio", error)
