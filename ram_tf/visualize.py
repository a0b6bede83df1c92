"""Where the model looks: animated glimpse GIFs and trajectory grids.

`rollouts` runs a trained model on test canvases and keeps, per image and
step t: the glimpse centre l_{t-1}, the k patches the sensor returned, and
the class probabilities the classifier would give after glimpse t.

`animation` draws one GIF per image, frame t showing
  left:   the canvas, the nested boxes of every scale at step t, the path so
          far, and the ground-truth box (dashed);
  middle: the k patches seen at step t, enlarged;
  right:  the class probabilities after step t;
coloured green when the final answer is right and red when it is wrong (the
seed project's convention); the glimpse centres are numbered 1..T and
coloured by step (viridis). `trajectory_grid` draws the paths of many
images in one PNG (numbered, step-coloured centres with a legend, title
"truth | prediction"). Matplotlib only, Agg backend, GIFs through Pillow.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from matplotlib import animation as mpl_animation  # noqa: E402

from ram_tf.plots import glimpse_boxes  # noqa: E402
from ram_tf.plots import step_colours  # noqa: E402


def rollouts(model, images: np.ndarray, sample: bool = False,
             seed: int = 0) -> dict[str, np.ndarray]:
    """Run `model` and keep what each step saw.

    Args:
      model: a `RecurrentAttentionModel`.
      images: float32 [n, H, W, C].
      sample: stochastic policy (seeded) instead of the mean.

    Returns:
      locations [n, T, 2], patches [n, T, k, g, g, C],
      step_probabilities [n, T, 10], prediction [n].
    """
    x = tf.constant(images, tf.float32)
    noise = tf.constant([seed, 0], tf.int32) if sample else None
    out = model(x, sample=sample, noise_seed=noise, step_logits=True)
    locations = out["locations"]
    patches = tf.stack([model.sensor((x, locations[:, t]))
                        for t in range(locations.shape[1])], axis=1)
    probs = tf.nn.softmax(out["step_logits"]).numpy()
    return {"locations": locations.numpy(), "patches": patches.numpy(),
            "step_probabilities": probs,
            "prediction": probs[:, -1].argmax(-1)}


def _colour(correct: bool) -> str:
    return "limegreen" if correct else "red"


def _show(ax, image):
    c = image.shape[-1]
    ax.imshow(image[..., 0] if c == 1 else image, cmap="gray", vmin=0,
              vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def frame_figure(image, roll, t, label, bbox=None, glimpse_size=12):
    """The figure of frame t for one image (see the module docstring).

    Args:
      image: [H, W, C]; roll: one image's slice of `rollouts` output;
      label: true class; bbox: normalised (ymin, xmin, ymax, xmax) or None.

    Returns:
      (figure, canvas axes): the axes' data coordinates are pixels.
    """
    h, w, _ = image.shape
    locations = roll["locations"]
    num_scales = roll["patches"].shape[1]
    colour = _colour(int(roll["prediction"]) == int(label))
    fig = plt.figure(figsize=(2.4 * 3 + 0.8 * num_scales, 2.8))
    grid = fig.add_gridspec(1, 3, width_ratios=[3, 0.9 * num_scales, 3])
    ax = fig.add_subplot(grid[0])
    _show(ax, image)
    if bbox is not None:
        y0, x0, y1, x1 = np.asarray(bbox) * [h, w, h, w]
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0,
                                   fill=False, edgecolor="deepskyblue",
                                   lw=1, ls="--"))
    centres = (locations[:t + 1] + 1) * [h / 2, w / 2] - 0.5
    ax.plot(centres[:, 1], centres[:, 0], "-", color=colour, lw=1)
    _numbered_steps(ax, centres, step_colours(len(locations)))
    for x0, y0, side in glimpse_boxes(locations[t], (h, w), glimpse_size,
                                      num_scales):
        ax.add_patch(plt.Rectangle((x0, y0), side, side, fill=False,
                                   edgecolor=colour, lw=1.5))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_title(f"glimpse {t + 1}/{len(locations)}", fontsize=9)

    sub = grid[1].subgridspec(num_scales, 1)
    for k in range(num_scales):
        pax = fig.add_subplot(sub[k])
        _show(pax, roll["patches"][t, k])
        pax.set_ylabel(f"x{2**k}", fontsize=7)

    bax = fig.add_subplot(grid[2])
    probs = roll["step_probabilities"][t]
    bars = bax.bar(range(len(probs)), probs, color="lightgray")
    bars[int(np.argmax(probs))].set_color(colour)
    bax.set_ylim(0, 1)
    bax.set_xticks(range(len(probs)))
    bax.tick_params(labelsize=7)
    bax.set_title(f"truth {label} | answer {int(np.argmax(probs))}",
                  fontsize=9)
    fig.tight_layout()
    return fig, ax


def _numbered_steps(ax, centres, colours, size=9):
    """Glimpse centres as dots coloured by step, numbered 1, 2, ..."""
    for t, (cy, cx) in enumerate(centres):
        ax.plot(cx, cy, "o", color=colours[t], ms=size, mec="white",
                mew=0.6, label=f"glimpse {t + 1}")
        ax.text(cx, cy, str(t + 1), color="white", fontsize=size * 0.6,
                ha="center", va="center", fontweight="bold")


def animation(image, roll, label, path, bbox=None, glimpse_size=12,
              fps=1.5) -> int:
    """Write one image's GIF (one frame per glimpse); returns frame count."""
    frames = []
    for t in range(len(roll["locations"])):
        fig, _ = frame_figure(image, roll, t, label, bbox, glimpse_size)
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    fig = plt.figure(figsize=(frames[0].shape[1] / 100,
                              frames[0].shape[0] / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.axis("off")
    shown = ax.imshow(frames[0])

    def update(i):
        shown.set_data(frames[i])
        return [shown]

    anim = mpl_animation.FuncAnimation(fig, update, frames=len(frames))
    anim.save(path, writer=mpl_animation.PillowWriter(fps=fps), dpi=100)
    plt.close(fig)
    return len(frames)


def trajectory_grid(images, rolls, labels, path, cols=8):
    """Glimpse paths of n images in one PNG."""
    fig = trajectory_grid_figure(images, rolls, labels, cols)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def trajectory_grid_figure(images, rolls, labels, cols=8):
    """The figure of `trajectory_grid`."""
    n = len(images)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols,
                             figsize=(1.8 * cols, 2.0 * rows + 0.5),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        image = images[i]
        h, w, _ = image.shape
        _show(ax, image)
        prediction = int(rolls["prediction"][i])
        colour = _colour(prediction == int(labels[i]))
        centres = (rolls["locations"][i] + 1) * [h / 2, w / 2] - 0.5
        ax.plot(centres[:, 1], centres[:, 0], "-", color=colour, lw=1)
        _numbered_steps(ax, centres, step_colours(len(centres)), size=7)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_title(f"{int(labels[i])} | {prediction}", fontsize=9,
                     color=colour)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", fontsize=8,
               ncols=min(len(names), 8), frameon=False)
    return fig
