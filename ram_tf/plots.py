"""Figures with matplotlib's Agg backend (no display needed).

`example_grid` draws canvases with their ground truth: the digit's ink box
(green) and its centre (red cross), titled with the label, so a person can
check the data pipeline by eye.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def example_grid(batch: dict[str, np.ndarray], path: str,
                 title: str | None = None) -> None:
    """Save a grid of examples with their boxes and centres.

    Args:
      batch: arrays image [n, H, W, C] in [0, 1], label [n], location
        [n, 2] ((y, x) in [-1, 1]) and bbox [n, 4] (normalised
        ymin, xmin, ymax, xmax).
      path: output PNG.
      title: figure title.
    """
    images = np.asarray(batch["image"])
    n, h, w, c = images.shape
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        image = images[i, ..., 0] if c == 1 else images[i]
        ax.imshow(image, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        y0, x0, y1, x1 = np.asarray(batch["bbox"][i]) * [h, w, h, w]
        # Pixel i spans [i - 0.5, i + 0.5] in imshow coordinates.
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0,
                                   fill=False, edgecolor="lime", lw=1))
        cy, cx = (np.asarray(batch["location"][i]) + 1) * [h / 2, w / 2]
        ax.plot(cx - 0.5, cy - 0.5, "r+", ms=6)
        ax.set_title(str(int(batch["label"][i])), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
