"""Where a trained attention model looks: how often its glimpses land on the
digit, on the fixed validation canvases.

For each glimpse t it prints the share of images whose finest patch (side g,
centred on l_t) overlaps the digit's ink box, the share where any glimpse
did, the accuracy split by that, mean |l| and the mean distance |l_T - c|
of the last glimpse to the digit centre c, once following the policy mean
and once sampling it. For reference it prints the same for glimpses drawn
uniformly over the digit centres' range. results/studies/ holds what it
printed for the cluttered100 RAM runs. E.g.

  python scripts/glimpse_hits.py runs/ram6-cluttered100 --n 2000

Offline, point RAM_TF_MNIST_DIR at the four MNIST .gz files.
"""

import argparse

import numpy as np


def overlaps(centres, boxes, half):
    """[n, T] whether patches of half-side `half` at `centres` [n, T, 2]
    ((y, x) in [0, 1]) overlap `boxes` [n, 4] (ymin, xmin, ymax, xmax)."""
    y, x = centres[..., 0], centres[..., 1]
    b = boxes[:, None]
    return ((y + half > b[..., 0]) & (y - half < b[..., 2])
            & (x + half > b[..., 1]) & (x - half < b[..., 3]))


def report(name, locations, correct, boxes, centres, half):
    hit = overlaps((locations + 1) / 2, boxes, half)
    any_hit = hit.any(1)
    split = (f"accuracy when some glimpse hit {correct[any_hit].mean():.3f}, "
             f"when none {correct[~any_hit].mean():.3f}; "
             if correct is not None and (~any_hit).any() and any_hit.any()
             else "")
    accuracy = f"accuracy {correct.mean():.3f}; " if correct is not None else ""
    print(f"{name}: {accuracy}finest patch on the digit per glimpse "
          + " ".join(f"{h:.2f}" for h in hit.mean(0))
          + f"; any glimpse {any_hit.mean():.3f}; {split}"
          f"mean |l| {np.abs(locations[:, 1:]).mean():.2f}; last glimpse to "
          f"digit centre {np.abs(locations[:, -1] - centres).mean():.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdir", help="a run directory (ram-tf train)")
    p.add_argument("--n", type=int, default=2000,
                   help="validation images to look at")
    args = p.parse_args()

    from ram_tf import datasets
    from ram_tf import training

    config, model = training.load_run(args.workdir)
    arrays = datasets.fixed_arrays(config.data, "validation")
    n = min(args.n, len(arrays["label"]))
    x = arrays["image"][:n].astype(np.float32) / 255.0
    labels, boxes = arrays["label"][:n], arrays["bbox"][:n]
    centres = arrays["location"][:n]
    half = config.glimpse.size / 2 / x.shape[1]
    for name, sample in (("mean", False), ("sample", True)):
        locations, predictions = [], []
        for i in range(0, n, 250):
            out = model(x[i:i + 250], sample=sample)
            locations.append(out["locations"].numpy())
            predictions.append(np.argmax(out["logits"].numpy(), -1))
        report(name, np.concatenate(locations),
               np.concatenate(predictions) == labels, boxes, centres, half)
    reach = np.abs(centres).max()
    steps = np.concatenate(locations).shape[1]
    uniform = np.random.default_rng(0).uniform(-reach, reach, (n, steps, 2))
    report(f"uniform in [-{reach:.2f}, {reach:.2f}]", uniform, None, boxes,
           centres, half)


if __name__ == "__main__":
    main()
