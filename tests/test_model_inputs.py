"""What the attention models and the scorers refuse from a Python user:
non-finite batches and updates (leaving every weight as it was), integer
images, images of another size than the model was built for, L-DRAM
locations of another shape, and canvases the scorers would misread."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ram_tf import evaluation
from ram_tf import inference
from ram_tf.dram import DeepRecurrentAttentionModel
from ram_tf.model import RecurrentAttentionModel

TINY = dict(glimpse_size=4, num_scales=2, num_glimpses=3, glimpse_hidden=8,
            location_hidden=8, glimpse_units=16, core_units=16, mc_samples=2,
            seed=1)
RNG = np.random.default_rng(0)
X = RNG.uniform(size=(8, 20, 20, 1)).astype("float32")
Y = RNG.integers(0, 10, size=8)
CENTRES = RNG.uniform(-1, 1, size=(8, 2)).astype("float32")


def _trained(ldram=False):
    if ldram:
        model = DeepRecurrentAttentionModel(**TINY, context_size=8,
                                            location_loss_weight=1.0)
        targets = {"label": Y, "location": CENTRES}
    else:
        model, targets = RecurrentAttentionModel(**TINY), Y
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(X, targets, batch_size=8, verbose=0)
    return model


def _learned(model):
    """The weights and the optimizer's state (its update count included);
    not the random generator, which a refused step may have advanced."""
    return [*model.trainable_variables, *model.optimizer.variables]


def _state(model):
    return [v.numpy().copy() for v in _learned(model)]


def _unchanged(model, before):
    return all(np.array_equal(a, v.numpy(), equal_nan=True)
               for a, v in zip(before, _learned(model)))


def _with_nan(array, index=(0, 0)):
    array = array.copy()
    array[index] = np.nan
    return array


@pytest.mark.parametrize("case, message", [
    ("image", "the batch's images hold NaN or Inf values"),
    ("inf_image", "the batch's images hold NaN or Inf values"),
    ("sample_weight", "the batch's sample_weight holds NaN or Inf values"),
    ("location", "the batch's 'location' .* holds NaN or Inf values"),
])
def test_a_non_finite_batch_is_refused_and_changes_no_weight(case, message):
    model = _trained(ldram=case == "location")
    before = _state(model)
    x, targets, weight = X, Y, None
    if case == "image":
        x = _with_nan(X)
    elif case == "inf_image":
        x = X.copy()
        x[3, 5, 5, 0] = np.inf
    elif case == "sample_weight":
        weight = _with_nan(np.ones(8, "float32"), 2)
    else:
        targets = {"label": Y, "location": _with_nan(CENTRES)}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.fit(x, targets, sample_weight=weight, batch_size=8, verbose=0)
    # Without the checks the update was applied: every weight NaN.
    assert _unchanged(model, before)


def test_predict_and_evaluate_name_non_finite_images():
    model = _trained()
    for run in (lambda: model.predict(_with_nan(X), verbose=0),
                lambda: model.evaluate(_with_nan(X), Y, verbose=0)):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match="the batch's images hold NaN or Inf"):
            run()


@pytest.mark.parametrize("layer, value, message", [
    # Only the classifier: finite locations, a non-finite loss.
    ("action_net", np.inf, "the loss is not finite, so this update was not "
                           "applied: the model diverged"),
    ("location_net", np.nan, "the policy's locations are not finite, so "
                             "this update was not applied"),
])
def test_a_non_finite_loss_or_policy_applies_no_update(layer, value,
                                                       message):
    model = _trained()
    kernel = getattr(model, layer).variables[0]
    kernel.assign(tf.fill(kernel.shape, value))
    before = _state(model)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.fit(X, Y, batch_size=8, verbose=0)
    assert _unchanged(model, before)  # the optimizer's iterations too


def test_integer_images_are_refused_not_read_255_times_too_bright():
    model = _trained()
    raw = np.round(X * 255).astype("uint8")
    for run in (lambda: model(raw), lambda: model.predict(raw, verbose=0),
                lambda: model.fit(raw, Y, verbose=0)):
        with pytest.raises(ValueError, match="images must be floats in "
                           r"\[0, 1\].*received dtype uint8: divide 0-255"):
            run()


def test_images_of_another_size_than_built_are_refused():
    model = _trained()
    built = r"was built for images \[B, 20, 20, 1\]; received shape"
    with pytest.raises(ValueError, match=built + r" \(2, 24, 24, 1\)"):
        model(np.zeros((2, 24, 24, 1), "float32"))
    with pytest.raises(ValueError, match=built + r" \(8, 20, 20, 3\)"):
        model.predict(np.repeat(X, 3, axis=-1), verbose=0)
    # Keras relaxes a retraced function's shapes: the check moves to run
    # time, and the built size still answers.
    for n in (8, 5, 3):
        assert model.predict(X[:n], verbose=0)["logits"].shape == (n, 10)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        model.predict(np.zeros((4, 24, 24, 1), "float32"), verbose=0)
    assert model.predict(X, verbose=0)["logits"].shape == (8, 10)


@pytest.mark.parametrize("location", [CENTRES[:, 0], np.tile(CENTRES, 2)],
                         ids=["[B]", "[B, 4]"])
def test_ldram_locations_of_another_shape_are_refused(location):
    model = DeepRecurrentAttentionModel(**TINY, context_size=8,
                                        location_loss_weight=1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match=r"'location' holds each image's "
                       r"true centre \(y, x\) in \[-1, 1\], shape \[B, 2\]"):
        model.fit(X, {"label": Y, "location": location}, verbose=0)


def _brightest_half(images):
    """A stand-in exported callable: class 1 where the mean pixel is over
    0.5, else 0 (it reads [0, 1] pixels)."""
    return {"classes": (images.mean(axis=(1, 2, 3)) > 0.5).astype(int)}


def test_scorers_take_uint8_canvases_and_float_images_alike():
    canvases = np.round(RNG.uniform(0.3, 0.7, size=(40, 6, 6, 1)) * 255)
    arrays = {"image": canvases.astype("uint8"),
              "label": RNG.integers(0, 2, size=40)}
    floats = {**arrays, "image": arrays["image"].astype("float32") / 255}
    expected = 100.0 * np.mean(
        (floats["image"].mean(axis=(1, 2, 3)) > 0.5) != arrays["label"])
    assert 0 < expected < 100
    for a in (arrays, floats):
        assert inference.test_error(_brightest_half, a) == expected
    model = RecurrentAttentionModel(**TINY)
    x = {"image": np.round(X * 255).astype("uint8"), "label": Y}
    assert evaluation.evaluate(model, x, mc_samples=2) == evaluation.evaluate(
        model, {**x, "image": x["image"].astype("float32") / 255},
        mc_samples=2)


@pytest.mark.parametrize("edit, message", [
    (lambda a: {**a, "image": a["image"] * 255.0},
     r"float images must be in \[0, 1\]; these span .* pass them as uint8"),
    (lambda a: {**a, "image": a["image"].astype("int32")},
     "expected uint8 canvases"),
    (lambda a: {**a, "label": np.eye(10)[a["label"]]},
     "expected 'label' \\[8\\] integer classes.*one-hot labels need argmax"),
    (lambda a: {**a, "label": a["label"][:5]}, "one per image"),
    (lambda a: {"image": a["image"]}, "expected a dict with 'image'"),
    (lambda a: {**a, "image": a["image"][..., 0]},
     r"expected 'image' \[N, H, W, C\]"),
])
def test_scorers_refuse_canvases_they_would_misread(edit, message):
    arrays = edit({"image": X, "label": Y})
    with pytest.raises(inference.InputError, match=message):
        inference.test_error(_brightest_half, arrays)
    with pytest.raises(inference.InputError, match=message):
        evaluation.evaluate(RecurrentAttentionModel(**TINY), arrays)


@pytest.mark.parametrize("labels, message", [
    (np.full(8, 10), r"labels must be class indices in 0\.\.9 "
                     r"\(num_classes=10\)"),
    (np.full(8, -1), r"labels must be class indices in 0\.\.9"),
    (Y + 0.5, "labels must be whole class indices"),
])
def test_labels_outside_the_classes_are_refused_by_name(labels, message):
    model = _trained()
    before = _state(model)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.fit(X, labels, batch_size=8, verbose=0)
    assert _unchanged(model, before)
    # Whole float labels are class indices.
    model.fit(X, Y.astype("float32"), batch_size=8, verbose=0)


def test_negative_sample_weights_are_refused():
    model = _trained()
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="sample_weight must not be negative"):
        model.fit(X, Y, sample_weight=-np.ones(8, "float32"), verbose=0)


def test_an_unbatched_dataset_is_named():
    model = _trained()
    unbatched = tf.data.Dataset.from_tensor_slices((X, Y))
    with pytest.raises(ValueError, match=r"a tf\.data\.Dataset must be "
                       r"batched \(dataset\.batch\(n\)\)"):
        model.fit(unbatched, verbose=0)


def test_compile_refuses_a_loss_or_metrics_it_would_ignore():
    model = RecurrentAttentionModel(**TINY)
    with pytest.raises(ValueError, match="trains on its hybrid loss .* "
                       "compile takes an optimizer only. Received loss, "
                       "metrics"):
        model.compile(optimizer="adam", loss="sparse_categorical_"
                      "crossentropy", metrics=["accuracy"])
    model.compile(optimizer="adam", jit_compile=False)  # Keras's others
