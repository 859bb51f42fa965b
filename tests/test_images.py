"""Images outside the model (pixelrnn.images): grids, sample files, and the one mapping of 8-bit samples."""

import numpy as np
import pytest
import torch

from pixelrnn.images import (GRID_PADDING, GROUP_GAP, PADDING_VALUE, UNKNOWN_DARK, UNKNOWN_LIGHT, completion_grid, grid_array,
                             load_samples_npz, save_grid, save_samples_npz, write_samples_npz)

from pictures import no_temp_files, read_png, tile_at


# --------------------------------------------------------------------- grids and npz
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 256), (1, 4)])
def test_grid_png_round_trip(tmp_path, channels, levels):
    images = torch.randint(0, levels, (5, channels, 3, 4), generator=torch.Generator().manual_seed(0))
    path = save_grid(images, levels, tmp_path / "grid.png", nrow=2, scale=1)
    mode, grid = read_png(path)
    assert mode == ("L" if channels == 1 else "RGB")
    # 3 rows of 2 tiles of 3x4, 2 pixels of padding around every tile
    assert grid.shape[:2] == (GRID_PADDING + 3 * (3 + GRID_PADDING), GRID_PADDING + 2 * (4 + GRID_PADDING))
    expected = np.rint(images.numpy() * (255 / (levels - 1))).astype(np.uint8)
    for k in range(5):
        tile = tile_at(grid, k // 2, k % 2, 3, 4)
        tile = tile[None] if channels == 1 else tile.transpose(2, 0, 1)
        assert np.array_equal(tile, expected[k])
    assert (grid[:GRID_PADDING] == PADDING_VALUE).all()
    assert (tile_at(grid, 2, 1, 3, 4) == PADDING_VALUE).all()  # the unused sixth tile
    if levels == 2:
        assert set(np.unique(grid)) <= {0, 255, PADDING_VALUE}  # binary: black and white
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("size, scale", [((8, 8), 12), ((28, 28), 4), ((32, 32), 3), ((64, 64), 2), ((5, 130), 1)])
def test_saved_grids_are_enlarged_by_nearest_neighbour(tmp_path, size, scale):
    images = torch.randint(0, 17, (3, 1, *size), generator=torch.Generator().manual_seed(0))
    _, grid = read_png(save_grid(images, 17, tmp_path / "grid.png"))
    _, plain = read_png(save_grid(images, 17, tmp_path / "plain.png", scale=1))
    assert grid.shape == (plain.shape[0] * scale, plain.shape[1] * scale)
    assert min(size) * scale >= 96 or scale == 1  # a tile is comfortable to view
    assert np.array_equal(grid[::scale, ::scale], plain)  # every pixel became a scale x scale block
    assert np.array_equal(grid[scale - 1 :: scale, scale - 1 :: scale], plain)
    _, three = read_png(save_grid(images, 17, tmp_path / "three.png", scale=3))
    assert three.shape == (plain.shape[0] * 3, plain.shape[1] * 3)
    with pytest.raises(ValueError, match="scale"):
        save_grid(images, 17, tmp_path / "zero.png", scale=0)


def test_pairs_are_set_apart():
    images = torch.arange(6).reshape(6, 1, 1, 1) % 2
    grid = grid_array(images, 2, nrow=6, group=2)[..., 0]
    # three pairs of 1x1 tiles: 2-pixel gaps inside a pair, GROUP_GAP between pairs
    lefts = [GRID_PADDING + offset for offset in (0, 3, 3 + 1 + GROUP_GAP, 3 + 1 + GROUP_GAP + 3,
                                                  2 * (4 + GROUP_GAP), 2 * (4 + GROUP_GAP) + 3)]
    assert grid.shape[1] == lefts[-1] + 1 + GRID_PADDING
    assert [grid[GRID_PADDING, left] for left in lefts] == [0, 255, 0, 255, 0, 255]
    assert (np.delete(grid[GRID_PADDING], lefts) == PADDING_VALUE).all()


def test_grid_rejects_values_outside_the_levels(tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        save_grid(torch.full((1, 1, 2, 2), 2), 2, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_npz_round_trip(tmp_path):
    images = torch.randint(0, 256, (4, 3, 5, 6))
    path = save_samples_npz(images, tmp_path / "samples.npz")
    assert path == tmp_path / "samples.npz" and no_temp_files(tmp_path)
    with np.load(path) as data:
        assert data.files == ["images"] and data["images"].shape == (4, 3, 5, 6) and data["images"].dtype == np.uint8
    assert torch.equal(load_samples_npz(path), images)
    wide = torch.tensor([[[[0, 1000]]]])  # values beyond 8 bits keep a wider integer type
    assert torch.equal(load_samples_npz(save_samples_npz(wide, tmp_path / "wide.npz")), wide)
    save_samples_npz(images[:1], path)  # overwriting replaces the file
    assert load_samples_npz(path).shape == (1, 3, 5, 6)


@pytest.mark.parametrize("levels,dtype", [(256, np.uint8), (1000, np.int64)])
def test_streamed_npz_holds_the_bytes_of_the_whole_array(tmp_path, levels, dtype):
    import io
    import zipfile

    images = torch.randint(0, min(levels, 256), (10, 3, 5, 6))
    path = write_samples_npz((images[start : start + 4] for start in range(0, 10, 4)), images.shape, levels, tmp_path / "s.npz")
    assert path == tmp_path / "s.npz" and no_temp_files(tmp_path)
    whole = io.BytesIO()
    np.save(whole, images.numpy().astype(dtype))
    with zipfile.ZipFile(path) as archive:  # the .npy member is byte for byte what np.save writes for the whole array
        assert archive.namelist() == ["images.npy"] and archive.read("images.npy") == whole.getvalue()
        assert archive.getinfo("images.npy").compress_type == zipfile.ZIP_DEFLATED
    with np.load(path) as data:
        assert data["images"].dtype == dtype and np.array_equal(data["images"], images.numpy())
    assert torch.equal(load_samples_npz(path), images)


def test_streamed_npz_that_stops_early_leaves_no_file(tmp_path):
    images = torch.zeros(6, 1, 2, 2, dtype=torch.long)
    (tmp_path / "old.npz").write_bytes(b"old")

    def failing():
        yield images[:3]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_samples_npz(failing(), images.shape, 2, tmp_path / "old.npz")
    with pytest.raises(ValueError, match="held 3 images; the file was declared for 6"):
        write_samples_npz(iter([images[:3]]), images.shape, 2, tmp_path / "short.npz")
    with pytest.raises(ValueError, match="does not continue"):
        write_samples_npz(iter([images, images[:1]]), images.shape, 2, tmp_path / "long.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.npz"] and (tmp_path / "old.npz").read_bytes() == b"old"


def test_completion_grid_layout():
    original = torch.randint(0, 4, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    completions = torch.randint(0, 4, (2, 3, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(4, 4, dtype=torch.bool)
    known[:2] = True
    grid = completion_grid(original, completions, original, levels=4, known=known)
    # source | 3 completions | original: the completions are set apart by wider gaps
    lefts = [GRID_PADDING, GRID_PADDING + 4 + GROUP_GAP]
    lefts += [lefts[-1] + 4 + GRID_PADDING, lefts[-1] + 2 * (4 + GRID_PADDING)]
    lefts += [lefts[-1] + 4 + GROUP_GAP]
    assert grid.shape == (GRID_PADDING + 2 * (4 + GRID_PADDING), lefts[-1] + 4 + GRID_PADDING, 1)
    scale = 255 // 3

    def tile(n, column):
        top = GRID_PADDING + n * (4 + GRID_PADDING)
        return grid[top : top + 4, lefts[column] : lefts[column] + 4, 0]

    for n in range(2):
        occluded = tile(n, 0)
        assert np.array_equal(occluded[:2], original[n, 0, :2].numpy() * scale)
        marks = set(np.unique(occluded[2:]))
        assert marks == {UNKNOWN_DARK, UNKNOWN_LIGHT}  # the unknown part: a grey checkerboard
        for k in range(3):
            assert np.array_equal(tile(n, 1 + k), completions[n, k, 0].numpy() * scale)
        assert np.array_equal(tile(n, 4), original[n, 0].numpy() * scale)
        assert (grid[:, lefts[0] + 4 : lefts[1]] == PADDING_VALUE).all() and (grid[:, lefts[3] + 4 : lefts[4]] == PADDING_VALUE).all()
    # Negative values mark the unknown sub-pixels when no mask is given.
    marked = original.clone()
    marked[:, :, 2:] = -1
    assert np.array_equal(completion_grid(marked, completions, original, levels=4), grid)
