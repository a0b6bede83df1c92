"""GlimpseSensor: pixel-exact windows, (y, x) order, zero fill, backends."""

import numpy as np
import pytest
import tensorflow as tf

from ram_tf.glimpse import GlimpseSensor


def numpy_glimpse(images, locations, size, num_scales):
    """Independent reference: loops over pixels, trunc toward zero."""
    b, h, w, c = images.shape
    out = np.zeros((b, num_scales, size, size, c), np.float32)
    for i in range(b):
        ly, lx = np.clip(locations[i], -1, 1)
        for k in range(num_scales):
            s = size * 2**k
            y0 = int(np.float32(ly) * np.float32(h) / 2 + h / 2 - s / 2)
            x0 = int(np.float32(lx) * np.float32(w) / 2 + w / 2 - s / 2)
            patch = np.zeros((s, s, c), np.float32)
            for r in range(s):
                for q in range(s):
                    y, x = y0 + r, x0 + q
                    if 0 <= y < h and 0 <= x < w:
                        patch[r, q] = images[i, y, x]
            f = 2**k
            out[i, k] = patch.reshape(size, f, size, f, c).mean(axis=(1, 3))
    return out


@pytest.mark.parametrize("backend", ["matmul", "gather", "extract_glimpse"])
@pytest.mark.parametrize("size,num_scales,h,w", [
    (4, 3, 20, 20), (3, 2, 17, 23), (8, 1, 28, 28)])
def test_matches_numpy_reference_including_borders(backend, size,
                                                   num_scales, h, w):
    rng = np.random.default_rng(size + h)
    images = rng.random((24, h, w, 2)).astype(np.float32)
    locations = rng.uniform(-1, 1, (24, 2)).astype(np.float32)
    locations[:8] = rng.choice([-1.0, 1.0], (8, 2))  # exactly on borders
    got = GlimpseSensor(size, num_scales, backend)((images, locations))
    want = numpy_glimpse(images, locations, size, num_scales)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)


def test_backends_identical_on_random_locations():
    rng = np.random.default_rng(0)
    images = rng.random((64, 60, 60, 1)).astype(np.float32)
    locations = rng.uniform(-1.2, 1.2, (64, 2)).astype(np.float32)
    a = GlimpseSensor(12, 3, "gather")((images, locations))
    b = GlimpseSensor(12, 3, "extract_glimpse")((images, locations))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("channels", [1, 3])
def test_matmul_backend_equals_gather_and_is_exact_on_integer_pixels(
        channels):
    rng = np.random.default_rng(channels)
    locations = rng.uniform(-1.2, 1.2, (32, 2)).astype(np.float32)
    images = rng.random((32, 40, 36, channels)).astype(np.float32)
    a = GlimpseSensor(6, 3, "matmul")((images, locations)).numpy()
    b = GlimpseSensor(6, 3, "gather")((images, locations)).numpy()
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # Integer pixels (the canvases before scaling): sums of integers times
    # powers of two are exact in float32, whatever the order.
    pixels = np.floor(images * 256).astype(np.float32)
    a = GlimpseSensor(6, 3, "matmul")((pixels, locations)).numpy()
    b = GlimpseSensor(6, 3, "gather")((pixels, locations)).numpy()
    np.testing.assert_array_equal(a, b)


def test_selection_matrix_is_the_block_mean_of_the_window():
    from ram_tf.glimpse_tables import selection_matrices

    # Window of side 8 (g = 4, f = 2) starting at pixel -3 of a 6-pixel axis.
    m = selection_matrices(tf.constant([-3]), 6, 4, 2).numpy()[0]
    want = np.zeros((4, 6), np.float32)
    want[1, 0] = 0.5  # block 1 covers pixels -1, 0
    want[2, 1:3] = 0.5
    want[3, 3:5] = 0.5
    np.testing.assert_array_equal(m, want)


@pytest.mark.parametrize("length,size,scales", [(60, 12, 3), (100, 12, 3),
                                                 (28, 5, 2), (27, 7, 3),
                                                 (16, 4, 1)])
def test_one_table_lookup_gives_every_scales_window(length, size, scales):
    """The looked-up rows are, bit for bit, the selection matrices of the
    corners `window_corner` computes for each scale (the definition),
    over a dense sweep of locations, the ends, every pixel edge and
    centre, and the float32 neighbours of each (odd sizes included: their
    corners also change at half pixels)."""
    from ram_tf.glimpse import window_corner
    from ram_tf.glimpse_tables import lookup
    from ram_tf.glimpse_tables import scale_table
    from ram_tf.glimpse_tables import selection_matrices

    grid = np.arange(-2 * length, 2 * length + 1) / (2 * length)
    grid = grid.astype(np.float32)
    sweep = np.concatenate([
        np.linspace(-1, 1, 4001, dtype=np.float32), grid,
        np.nextafter(grid, np.float32(2)), np.nextafter(grid, np.float32(-2)),
        np.random.default_rng(0).uniform(-1, 1, 4000).astype(np.float32)])
    sweep = np.clip(sweep, -1, 1)
    locations = np.stack([sweep, sweep[::-1]], axis=1)
    rows, cols = lookup(tf.constant(locations), (length, length), size,
                        scales)
    for axis, got in ((0, rows), (1, cols)):
        want = [selection_matrices(window_corner(
                    tf.constant(locations), (length, length),
                    size * 2**k)[:, axis], length, size, 2**k)
                for k in range(scales)]
        np.testing.assert_array_equal(got.numpy(),
                                      tf.concat(want, axis=1).numpy())
    # Non-square images: one table per side, the same matrices.
    rows_wide, cols_wide = lookup(tf.constant(locations),
                                  (length, length + 3), size, scales)
    np.testing.assert_array_equal(rows_wide.numpy(), rows.numpy())
    assert cols_wide.shape[-1] == length + 3
    assert scale_table(length, size, scales).shape[1:] == (scales * size,
                                                           length)


def test_matmul_sensor_on_non_square_images_matches_gather():
    rng = np.random.default_rng(3)
    images = np.floor(rng.random((16, 20, 33, 2)) * 256).astype(np.float32)
    locations = rng.uniform(-1, 1, (16, 2)).astype(np.float32)
    a = GlimpseSensor(5, 3, "matmul")((images, locations)).numpy()
    b = GlimpseSensor(5, 3, "gather")((images, locations)).numpy()
    np.testing.assert_array_equal(a, b)


def test_window_placement_and_yx_order_are_pixel_exact():
    # On an 8x8 image a size-2 window at (0, 0) covers rows/cols 3-4;
    # a size-4 window at (0.5, 0.5) covers rows/cols 4-7.
    image = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
    out = GlimpseSensor(2, 1)((image, np.zeros((1, 2), np.float32)))
    np.testing.assert_array_equal(out[0, 0, :, :, 0], image[0, 3:5, 3:5, 0])
    out = GlimpseSensor(4, 1)((image, np.array([[0.5, 0.5]], np.float32)))
    np.testing.assert_array_equal(out[0, 0, :, :, 0], image[0, 4:8, 4:8, 0])
    # (y, x): moving y down by one window moves rows, not columns.
    out = GlimpseSensor(2, 1)((image, np.array([[0.5, -0.5]], np.float32)))
    np.testing.assert_array_equal(out[0, 0, :, :, 0], image[0, 5:7, 1:3, 0])


def test_zeros_outside_the_image_and_coarse_scale_is_block_mean():
    image = np.ones((1, 8, 8, 1), np.float32)
    out = GlimpseSensor(4, 2)((image, np.array([[-1.0, -1.0]], np.float32)))
    fine = out[0, 0, :, :, 0].numpy()
    np.testing.assert_array_equal(fine[:2], 0)  # above the image
    np.testing.assert_array_equal(fine[:, :2], 0)  # left of it
    np.testing.assert_array_equal(fine[2:, 2:], 1)
    coarse = out[0, 1, :, :, 0].numpy()  # 8x8 window at corner (-4, -4)
    np.testing.assert_array_equal(coarse[:2, :2], 0)
    np.testing.assert_array_equal(coarse[2:, 2:], 1)


@pytest.mark.parametrize("backend", ["matmul", "gather"])
def test_backend_compiles_under_xla(backend):
    rng = np.random.default_rng(1)
    images = tf.constant(rng.random((8, 30, 30, 1)).astype(np.float32))
    locations = tf.constant(rng.uniform(-1, 1, (8, 2)).astype(np.float32))
    sensor = GlimpseSensor(6, 3, backend)
    compiled = tf.function(lambda x, loc: sensor((x, loc)), jit_compile=True)
    want = sensor((images, locations)).numpy()
    # Same windows; XLA may order the block-mean additions differently.
    np.testing.assert_allclose(compiled(images, locations).numpy(), want,
                               rtol=0, atol=1e-6)
    xla_layer = GlimpseSensor(6, 3, backend, xla=True)
    np.testing.assert_allclose(xla_layer((images, locations)).numpy(), want,
                               rtol=0, atol=1e-6)


def test_no_gradient_reaches_locations():
    images = tf.random.uniform([2, 16, 16, 1])
    locations = tf.Variable(tf.zeros([2, 2]))
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(GlimpseSensor(4, 2)((images, locations)))
    assert tape.gradient(out, locations) is None


def test_config_round_trip_and_output_shape():
    sensor = GlimpseSensor(5, 2, "extract_glimpse", name="s")
    clone = GlimpseSensor.from_config(sensor.get_config())
    assert (clone.size, clone.num_scales, clone.backend) == (
        5, 2, "extract_glimpse")
    assert not clone.supports_jit
    assert sensor.compute_output_shape(((3, 20, 20, 1), (3, 2))) == (
        3, 2, 5, 5, 1)


@pytest.mark.parametrize("kwargs,match", [
    ({"size": 0}, "size"), ({"size": -3}, "size"),
    ({"num_scales": 0}, "num_scales"), ({"num_scales": 1.5}, "num_scales"),
    ({"backend": "bilinear"}, "backend"),
    ({"backend": "extract_glimpse", "xla": True}, "XLA"),
])
def test_invalid_arguments_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GlimpseSensor(**kwargs)


def test_selection_tables_are_captured_once_not_copied_per_glimpse():
    # A constant per read would store the table once per glimpse and
    # chain in a SavedModel (tens of MB on translated60 with one table
    # per scale and axis).
    sensor = GlimpseSensor(6, 3, "matmul")
    images = tf.zeros([2, 20, 20, 1])

    @tf.function
    def four_glimpses(images):
        return [sensor((images, tf.fill([2, 2], v)))
                for v in (-0.5, 0.0, 0.3, 0.9)]

    graph = four_glimpses.get_concrete_function(images).graph
    big_constants = [op.name for op in graph.get_operations()
                     if op.type == "Const"
                     and (op.outputs[0].shape.num_elements() or 0) > 100]
    assert not big_constants
    tables = [t for t in graph.external_captures if t.shape.rank == 3]
    assert len(tables) == 1  # every scale, rows and columns: one table


def test_bfloat16_products_round_to_8_bits_and_keep_the_windows():
    """product_dtype="bfloat16": the same windows (zeros where float32
    has zeros), values within three bfloat16 roundings (pixels, row
    products, patches: 8 significant bits each, 2^-8 relative at most) of
    the float32 sensor, float32 output, exact tables."""
    from ram_tf.glimpse_tables import scale_table

    rng = np.random.default_rng(4)
    images = rng.random((64, 30, 30, 1)).astype(np.float32)
    locations = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    exact = GlimpseSensor(6, 3)((images, locations)).numpy()
    sensor = GlimpseSensor(6, 3, product_dtype="bfloat16")
    got = sensor((images, locations))
    assert got.dtype == tf.float32
    got = got.numpy()
    np.testing.assert_array_equal(got == 0, exact == 0)
    np.testing.assert_allclose(got, exact, rtol=3 * 2.0**-8, atol=0)
    assert not np.array_equal(got, exact)
    np.testing.assert_array_equal(
        tf.cast(scale_table(30, 6, 3, "bfloat16"), tf.float32).numpy(),
        scale_table(30, 6, 3).numpy())
    clone = GlimpseSensor.from_config(sensor.get_config())
    assert clone.product_dtype == "bfloat16"


@pytest.mark.parametrize("kwargs", [
    {"product_dtype": "float16"},
    {"product_dtype": "bfloat16", "backend": "gather"},
])
def test_product_dtype_is_checked(kwargs):
    with pytest.raises(ValueError, match="product_dtype"):
        GlimpseSensor(**kwargs)
