"""Helpers for tests that read the PNG files the library writes."""

import numpy as np
from PIL import Image

from pixelrnn.images import GRID_PADDING


def read_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.mode, np.asarray(image)


def tile_at(grid, row, column, height, width):
    top, left = GRID_PADDING + row * (height + GRID_PADDING), GRID_PADDING + column * (width + GRID_PADDING)
    return grid[top : top + height, left : left + width]


def no_temp_files(folder):
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
