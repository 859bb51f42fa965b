"""Command-line interface: ``pixelrnn <command> ...``; a user's mistake is one line on stderr, exit 2.

A thin layer over the library that nothing in the library imports: one module per group of
commands (:mod:`.train`: presets, configs, train, evaluate; :mod:`.generate`: sample, complete;
:mod:`.codec`: compress, decompress; :mod:`.pretrained`: pretrained; :mod:`.runs`: check, show, plot). Every command turns the library's errors
(:class:`pixelrnn.errors.PixelRNNError`) into :class:`UserError` with the same message.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from .. import __version__
from . import codec, generate, pretrained, runs, train
from ..utils import is_full_disk
from .common import UserError

# A user's mistake: printed as one line, never a traceback. The library's own errors arrive as
# UserError; these are the operating system's answers about files the user named.
USER_ERRORS = (UserError, FileNotFoundError, PermissionError, IsADirectoryError)
# Pillow logs what it finds wrong in a damaged image file before raising; the error line says it once.
logging.getLogger("PIL").addHandler(logging.NullHandler())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelrnn", description="Pixel Recurrent Neural Networks: train, evaluate, sample.")
    parser.add_argument("--version", action="version", version=f"pixelrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_parsers(sub)
    generate.add_sample_parser(sub)
    generate.add_complete_parser(sub)
    codec.add_compress_parser(sub)
    codec.add_decompress_parser(sub)
    pretrained.add_parser(sub)
    runs.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`pixelrnn presets | head`): stop quietly with the status of a tool
        # killed by SIGPIPE; what is still buffered goes nowhere instead of failing at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    except USER_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"pixelrnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:
        if not is_full_disk(error):
            raise
        # Every writer of the library says which file found the disk full; this is the net under them.
        where = f" writing {error.filename}" if error.filename else ""
        print(f"pixelrnn {args.command}: error: the disk is full{where}; free some space and run the command again", file=sys.stderr)
        return 2
    return 0


__all__ = ["UserError", "build_parser", "main"]
