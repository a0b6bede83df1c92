"""Figures with matplotlib's Agg backend (no display needed).

`example_grid` draws canvases with their ground truth: the digit's ink box
(green) and its centre (red cross), titled with the label, so a person can
check the data pipeline by eye. `glimpse_path` numbers the glimpses and
colours them by time step; `learning_curves` marks every logged point.
Each has a `*_figure` twin returning the figure, for tests.
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
    fig = example_grid_figure(batch, title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def example_grid_figure(batch: dict[str, np.ndarray],
                        title: str | None = None):
    """The figure of `example_grid`: every label above its own image."""
    images = np.asarray(batch["image"])
    n, h, w, c = images.shape
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    # Constrained layout reserves room for each title (and the suptitle),
    # so no image covers the labels of the row below.
    fig, axes = plt.subplots(rows, cols,
                             figsize=(1.6 * cols, 1.9 * rows + 0.4),
                             squeeze=False, layout="constrained")
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
    return fig


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
    """One image with its glimpse path, every step numbered and coloured.

    Step t (1..T) gets its colour from the viridis map (dark: first,
    yellow: last), its number at the glimpse centre, and, when the sensor
    is given, its nested boxes in the same colour; a legend names the
    steps.

    Args:
      image: [H, W, C] in [0, 1].
      locations: [T, 2] glimpse centres, (y, x) in [-1, 1].
      glimpse_size, num_scales: the sensor (boxes drawn when given).
      correct: path line green (True) / red (False) / blue (unknown).
    """
    fig = glimpse_path_figure(image, locations, glimpse_size, num_scales,
                              title, correct)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def step_colours(num_steps: int) -> list:
    """One RGBA colour per glimpse step, first to last (viridis)."""
    cmap = plt.get_cmap("viridis")
    return [cmap(t / max(num_steps - 1, 1) * 0.9) for t in range(num_steps)]


def glimpse_path_figure(image, locations, glimpse_size=None, num_scales=1,
                        title=None, correct=None):
    """The figure of `glimpse_path` (see there)."""
    h, w, c = image.shape
    locations = np.asarray(locations)
    colour = {True: "lime", False: "red", None: "deepskyblue"}[correct]
    colours = step_colours(len(locations))
    fig, ax = plt.subplots(figsize=(4.8, 4), layout="constrained")
    ax.imshow(image[..., 0] if c == 1 else image, cmap="gray", vmin=0,
              vmax=1, interpolation="nearest")
    centres = (locations + 1) * [h / 2, w / 2] - 0.5
    ax.plot(centres[:, 1], centres[:, 0], "-", color=colour, lw=1,
            alpha=0.6)
    for t, (loc, (cy, cx)) in enumerate(zip(locations, centres)):
        ax.plot(cx, cy, "o", color=colours[t], ms=11, mec="white", mew=0.8,
                label=f"glimpse {t + 1}")
        ax.text(cx, cy, str(t + 1), color="white", fontsize=7,
                ha="center", va="center", fontweight="bold")
        if glimpse_size:
            for x0, y0, side in glimpse_boxes(loc, (h, w), glimpse_size,
                                              num_scales):
                ax.add_patch(plt.Rectangle((x0, y0), side, side, fill=False,
                                           edgecolor=colours[t], lw=1.2))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7,
              frameon=False, title="order", title_fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def read_log(path: str) -> dict[str, np.ndarray]:
    """A run's log.csv as columns of floats.

    Rows that repeat the header (two writers, or a log appended to by an
    older version) and rows cut short by a kill are skipped; an empty or
    non-numeric cell reads as NaN.
    """
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return {}
    header = rows[0]
    body = [r for r in rows[1:] if len(r) == len(header) and r != header]
    return {k: np.array([_number(r[i]) for r in body], dtype=float)
            for i, k in enumerate(header)}


def _number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return float("nan")


def updates_to_reach(log: dict[str, np.ndarray], threshold: float,
                     key: str = "val_accuracy") -> float | None:
    """First logged update count at which `key` >= threshold, else None."""
    hits = np.nonzero(log[key] >= threshold)[0]
    return float(log["updates"][hits[0]]) if len(hits) else None


def speedup(log: dict[str, np.ndarray], reference: dict[str, np.ndarray],
            threshold: float,
            key: str = "val_accuracy") -> tuple[str, float] | None:
    """How many times fewer updates `log` needs than `reference` to reach
    `threshold`: updates(reference) / updates(log).

    Returns (relation, ratio), relation "=" when both got there; ">=" when
    `log` got there by its first logged point (it may have been sooner);
    ">" when `reference` never did (the ratio uses the updates it logged).
    None when `log` never got there, or `reference` neither got there nor
    ran longer than `log` needed (no bound).
    """
    reached = updates_to_reach(log, threshold, key)
    if reached is None:
        return None
    theirs = updates_to_reach(reference, threshold, key)
    if theirs is None:
        seen = float(np.nanmax(reference["updates"]))
        return (">", seen / reached) if seen > reached else None
    first = reached == log["updates"][0]
    return (">=" if first else "="), theirs / reached


_TERMS = ("val_accuracy", "cross_entropy", "baseline_mse", "reinforce",
          "reward", "location_abs")


def learning_curves(logs: dict[str, dict[str, np.ndarray]], path: str):
    """Validation accuracy and every loss term against updates, one PNG.

    Args:
      logs: {run label: `read_log` columns}.
    """
    fig = learning_curves_figure(logs)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def learning_curves_figure(logs: dict[str, dict[str, np.ndarray]]):
    """The figure of `learning_curves`. Every logged point has a marker,
    so a run with one epoch shows as a dot, not as nothing."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, key in zip(axes.flat, _TERMS):
        for label, log in logs.items():
            if key in log and "updates" in log:
                many = len(log["updates"]) > 40
                ax.plot(log["updates"], log[key], label=label, lw=1.2,
                        marker="." if many else "o", ms=3 if many else 5)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
