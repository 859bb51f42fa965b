"""The raster order of the factorisation p(x) = prod_i p(x_i | x_<i) (paper section 2, eq. 1-2).

Sub-pixels are visited row by row, column by column, and within a pixel channel by channel (R,
then G, then B). :class:`RasterCursor` holds that order for every incremental executor, float
(:mod:`pixelrnn.sampling`) and integer (:mod:`pixelrnn.codec`): ``logits`` and ``advance`` for
sub-pixel (i, j, c) in turn, any other position refused.
"""

from __future__ import annotations


class RasterCursor:
    """The raster order every incremental engine keeps (the sampling engines and the codec's integer engines).

    ``logits`` / ``advance`` for sub-pixel (i, j, c) in turn; the column at (i, j) is computed
    once per channel asked for and made final when the pixel's last channel is fixed; a row's
    work is done when it starts. Subclasses set ``channels``, ``batch``, ``height``, ``width``
    and ``input_conv`` (with ``start_row``) in ``reset``, end it with ``_start_cursor()``, and
    implement ``_write_input(j, c, values)`` (a fixed sub-pixel into the input cache),
    ``_column(i, j)`` (every layer at (i, j); logits indexed ``[:, c]``) and ``_start_blocks_row(i)``.
    """

    position: tuple[int, int, int] | None = None

    def _start_cursor(self) -> None:
        self.position = (0, 0, 0)
        self._column_at = None  # the (i, j, c) for which the column at (i, j) was last computed
        self._logits = None
        self._start_row(0)

    def logits(self, i: int, j: int, c: int):
        """Logits (batch, levels) of sub-pixel c at (i, j) given every earlier sub-pixel."""
        self._check(i, j, c)
        self._ensure_column(i, j, c)
        return self._logits[:, c]

    def advance(self, i: int, j: int, c: int, values) -> None:
        """Fix sub-pixel c at (i, j) to ``values`` (batch,) integers and move the cursor on."""
        self._check(i, j, c)
        self._write_input(j, c, values)
        if c + 1 < self.channels:
            self.position = (i, j, c + 1)
            return
        # The pixel is complete: make its column final (computed with channels < C-1 known;
        # the last channel itself is read by later positions only) before moving on.
        self._ensure_column(i, j, c)
        if j + 1 < self.width:
            self.position = (i, j + 1, 0)
        else:
            self.position = (i + 1, 0, 0)
            if i + 1 < self.height:
                self._start_row(i + 1)

    def _check(self, i: int, j: int, c: int) -> None:
        if self.position is None:
            raise ValueError("call reset(batch, height, width) before sampling")
        if self.position[0] >= self.height:
            raise ValueError(f"the image is complete; sub-pixel {(i, j, c)} is outside it")
        if (i, j, c) != self.position:
            raise ValueError(f"sub-pixels go in raster order: the next is (i, j, c) = {self.position}, not {(i, j, c)}")

    def _ensure_column(self, i: int, j: int, c: int) -> None:
        if self._column_at != (i, j, c):
            self._logits = self._column(i, j)
            self._column_at = (i, j, c)

    def _start_row(self, i: int) -> None:
        """Row i-1 is final: per-row work of the input convolution and of the blocks."""
        self.input_conv.start_row(i)
        self._start_blocks_row(i)

    def _write_input(self, j: int, c: int, values) -> None:
        raise NotImplementedError

    def _column(self, i: int, j: int):
        raise NotImplementedError

    def _start_blocks_row(self, i: int) -> None:
        raise NotImplementedError
