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


def glimpse_boxes(location, image_hw, size, num_scales):
    """Rectangles (x0, y0, side) in imshow coordinates of one glimpse.

    Uses the sensor's own placement (corner truncated toward zero), so
    the boxes show exactly the pixels the model read.
    """
    h, w = image_hw
    boxes = []
    for k in range(num_scales):
        side = size * 2**k
        y0 = int(np.float32(location[0]) * h / 2 + h / 2 - side / 2)
        x0 = int(np.float32(location[1]) * w / 2 + w / 2 - side / 2)
        boxes.append((x0 - 0.5, y0 - 0.5, side))
    return boxes


def glimpse_path(image: np.ndarray, locations: np.ndarray, path: str,
                 glimpse_size: int | None = None, num_scales: int = 1,
                 title: str | None = None, correct: bool | None = None):
    """One image with its glimpse path and the nested boxes of every step.

    Args:
      image: [H, W, C] in [0, 1].
      locations: [T, 2] glimpse centres, (y, x) in [-1, 1].
      glimpse_size, num_scales: the sensor (boxes drawn when given).
      correct: colour green (True) / red (False) / blue (unknown).
    """
    h, w, c = image.shape
    colour = {True: "lime", False: "red", None: "deepskyblue"}[correct]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image[..., 0] if c == 1 else image, cmap="gray", vmin=0,
              vmax=1, interpolation="nearest")
    centres = (np.asarray(locations) + 1) * [h / 2, w / 2] - 0.5
    ax.plot(centres[:, 1], centres[:, 0], "-", color=colour, lw=1)
    ax.plot(centres[0, 1], centres[0, 0], "o", mfc="none", color=colour)
    ax.plot(centres[-1, 1], centres[-1, 0], "o", color=colour)
    if glimpse_size:
        for t, loc in enumerate(locations):
            alpha = 0.3 + 0.7 * (t + 1) / len(locations)
            for x0, y0, side in glimpse_boxes(loc, (h, w), glimpse_size,
                                              num_scales):
                ax.add_patch(plt.Rectangle((x0, y0), side, side, fill=False,
                                           edgecolor=colour, lw=1,
                                           alpha=alpha))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_log(path: str) -> dict[str, np.ndarray]:
    """A run's log.csv as columns of floats."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan
                         for r in rows]) for k in rows[0]}


def updates_to_reach(log: dict[str, np.ndarray], threshold: float,
                     key: str = "val_accuracy") -> float | None:
    """First logged update count at which `key` >= threshold, else None."""
    hits = np.nonzero(log[key] >= threshold)[0]
    return float(log["updates"][hits[0]]) if len(hits) else None


_TERMS = ("val_accuracy", "cross_entropy", "baseline_mse", "reinforce",
          "reward", "location_abs")


def learning_curves(logs: dict[str, dict[str, np.ndarray]], path: str):
    """Validation accuracy and every loss term against updates, one PNG.

    Args:
      logs: {run label: `read_log` columns}.
    """
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, key in zip(axes.flat, _TERMS):
        for label, log in logs.items():
            if key in log and "updates" in log:
                ax.plot(log["updates"], log[key], label=label, lw=1.2)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
