"""Glimpse GIFs and trajectory grids from a small untrained model."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ram_tf import visualize as vis
from ram_tf.model import RecurrentAttentionModel
from ram_tf.plots import glimpse_boxes


@pytest.fixture(scope="module")
def rolled():
    model = RecurrentAttentionModel(glimpse_size=4, num_scales=2,
                                    num_glimpses=3, glimpse_hidden=8,
                                    location_hidden=8, glimpse_units=8,
                                    core_units=8, seed=0)
    images = np.zeros((2, 32, 32, 1), np.float32)
    images[:, 8:20, 10:18] = 1.0
    return model, images, vis.rollouts(model, images)


def test_rollouts_keep_what_each_step_saw(rolled):
    model, images, rolls = rolled
    assert rolls["locations"].shape == (2, 3, 2)
    assert rolls["patches"].shape == (2, 3, 2, 4, 4, 1)
    assert rolls["step_probabilities"].shape == (2, 3, 10)
    np.testing.assert_allclose(rolls["step_probabilities"].sum(-1), 1,
                               atol=1e-5)
    want = model.sensor((tf.constant(images),
                         tf.constant(rolls["locations"][:, 1])))
    np.testing.assert_allclose(rolls["patches"][:, 1], want.numpy())
    final = tf.nn.softmax(model(images)["logits"]).numpy()
    np.testing.assert_allclose(rolls["step_probabilities"][:, -1], final,
                               atol=1e-6)


def test_gif_has_one_frame_per_glimpse(rolled, tmp_path):
    _, images, rolls = rolled
    one = {k: v[0] for k, v in rolls.items()}
    path = str(tmp_path / "g.gif")
    assert vis.animation(images[0], one, 3, path, glimpse_size=4) == 3
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        assert gif.size[0] > 400 and gif.size[1] > 150


def test_boxes_are_drawn_where_the_locations_say(rolled):
    _, images, rolls = rolled
    one = {k: v[0] for k, v in rolls.items()}
    one["locations"] = np.array([[0.0, 0.0], [-0.5, 0.25], [0.5, -0.5]],
                                np.float32)
    label = int(one["prediction"])  # right answer: green boxes
    for t in range(3):
        fig, ax = vis.frame_figure(images[0], one, t, label, glimpse_size=4)
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
        height = pixels.shape[0]
        for x0, y0, side in glimpse_boxes(one["locations"][t], (32, 32), 4,
                                          2):
            # Middle of the box's top edge, in figure pixels.
            fx, fy = ax.transData.transform((x0 + side / 2, y0))
            row, col = int(round(height - fy)), int(round(fx))
            patch = pixels[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3)
            green = (patch[:, 1] > 150) & (patch[:, 0] < 120) & (
                patch[:, 2] < 120)
            assert green.any(), (t, x0, y0)
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_trajectory_grid_png(rolled, tmp_path):
    _, images, rolls = rolled
    path = str(tmp_path / "t.png")
    vis.trajectory_grid(images, rolls, [1, 2], path)
    with Image.open(path) as png:
        assert png.size[0] >= 2 * 150


def test_visualize_command_on_another_task_of_the_same_size(
        mnist_dir, cache_dir, tmp_path):
    from click.testing import CliRunner

    from ram_tf import config as config_lib
    from ram_tf import training
    from ram_tf_cli.main import cli

    cfg = config_lib.resolve("ram", "translated60", {
        "glimpse.num_glimpses": 2, "core.core_units": 8,
        "core.glimpse_units": 8, "train.steps": 1, "train.batch_size": 2,
        "train.mc_samples": 2})
    workdir = str(tmp_path / "run")
    training.train_and_evaluate(cfg, workdir, verbose=0, evaluate_test=False)
    out = str(tmp_path / "vis")
    result = CliRunner().invoke(cli, ["visualize", workdir, "--task",
                                      "cluttered60", "--n", "2", "--out", out])
    assert result.exit_code == 0, result.output
    with Image.open(f"{out}/glimpses_01.gif") as gif:
        assert gif.n_frames == 2
    wrong = CliRunner().invoke(cli, ["visualize", workdir, "--task",
                                     "cluttered100", "--out", out])
    assert wrong.exit_code == 2 and "100x100x1" in wrong.output


def test_trajectory_grid_numbers_and_colours_the_glimpses(rolled):
    import matplotlib.pyplot as plt

    _, images, rolls = rolled
    fig = vis.trajectory_grid_figure(images, rolls, [1, 2])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["1", "2", "3"]
    dots = [line for line in ax.get_lines()
            if line.get_label().startswith("glimpse")]
    assert len({tuple(d.get_color()) for d in dots}) == 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "glimpse 1", "glimpse 2", "glimpse 3"]
    plt.close(fig)


def test_gif_frames_number_the_glimpses_so_far(rolled):
    import matplotlib.pyplot as plt

    _, images, rolls = rolled
    one = {k: v[0] for k, v in rolls.items()}
    fig, ax = vis.frame_figure(images[0], one, 2, 3, glimpse_size=4)
    assert [t.get_text() for t in ax.texts] == ["1", "2", "3"]
    plt.close(fig)
