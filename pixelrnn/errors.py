"""The library's exception types: every mistake a user can make with a value or a file.

Each carries a one-line message that names the bad value and what would be accepted. The
library raises these and nothing else for a user's mistake; the command line prints them as
one line and exits with status 2.
"""


class PixelRNNError(Exception):
    """Base of every error the library reports to a user; the message is one line."""


class ConfigError(PixelRNNError, ValueError):
    """A configuration value that no model accepts; the message names it and what is allowed."""


class CheckpointError(PixelRNNError):
    """A file that is not a readable pixelrnn checkpoint; the message says which and why."""


class DatasetError(PixelRNNError):
    """A dataset cannot be found, verified or parsed."""


class ImageError(PixelRNNError):
    """An image file that cannot be read, or whose values a model cannot take."""


class TrainingError(PixelRNNError):
    """Training cannot go on (a non-finite loss, an unreadable state)."""


class DiskFullError(PixelRNNError):
    """A file could not be written: its disk (or quota) is full. The message names the file and
    the space it needs; the file's previous version, and every other file, is left as it was."""

    def __init__(self, message: str, path=None, needed: int | None = None):
        super().__init__(message)
        self.path, self.needed = path, needed


class CompressionError(PixelRNNError):
    """A file that cannot be decoded, or images that cannot be coded."""


class WrongModelError(CompressionError):
    """A compressed file was written with another model (or another coding model) than the one given."""


class DamagedFileError(CompressionError):
    """A compressed file is damaged: truncated, altered, or not a compressed file at all."""


class PlatformError(CompressionError):
    """A float-arithmetic file did not decode on another platform; files of the integer coding model never raise it."""


def one_line(error: BaseException) -> str:
    """The first line of a (foreign) exception's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
