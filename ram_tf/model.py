"""The Recurrent Attention Model (Mnih et al. 2014) as a Keras 3 model.

One step t = 1..T (`step`):
  rho_t = GlimpseSensor(x, l_{t-1})          [B, k, g, g, C]
  g_t   = GlimpseNetwork(rho_t, l_{t-1})     [B, 256]
  h_t   = CoreNetwork(g_t, h_{t-1})          [B, 256]  (LSTM or rectifier)
  mu_t  = LocationNetwork(h_t)               [B, 2]
  l_t   = clip(mu_t + sigma * eps, -1, 1) when sampling, else mu_t
  b_t   = BaselineNetwork(h_t)               [B]
and after step T, logits = ActionNetwork(h_T). The T - 1 locations l_1 ..
l_{T-1} are the policy's actions; the location proposed after the last
glimpse is never used.

`call` unrolls the steps in Python (a `tf.while_loop` would need Flex ops in
TFLite) and returns a dict of tensors:
  logits    [B, 10]
  locations [B, T, 2]    the glimpse centres used, l_0 .. l_{T-1}
  means     [B, T-1, 2]  mu_1 .. mu_{T-1}
  samples   [B, T-1, 2]  the unclipped draws (= means when deterministic)
  baselines [B, T-1]     b_1 .. b_{T-1}
  supervised [B, A, 2]   means with gradient into the core (L-DRAM only)
(DRAM, `ram_tf.dram`, reuses this loop through the `begin` and `step`
hooks; its l_0 is an action too, so it has T actions instead of T - 1.)

`train_step` (REINFORCE, `ram_tf.reinforce`) repeats every image M times
with independent location samples; `test_step` scores the deterministic
policy (l_t = mu_t). Randomness comes from the model's `SeedGenerator`.
Both take a batch as Keras models do, `(x, y)` or `(x, y, sample_weight)`
(so `fit(images, labels)` on NumPy arrays works), or as the dicts of
`ram_tf.datasets` (`ram_tf.batches.unpack_batch`).

`train_step` and `test_step` run `rollouts`: `call` on `model.chains`
independent slices of the batch (`ram_tf.chains`), with the policy noise
drawn once before the cut, so the numbers do not depend on the chain count
(to float rounding of the gradient sum).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ram_tf import chains
from ram_tf import config as config_lib
from ram_tf import cores
from ram_tf import distribute
from ram_tf import networks
from ram_tf import noise as noise_lib
from ram_tf import steps
from ram_tf.batches import as_images
from ram_tf.glimpse import GlimpseSensor
from ram_tf.networks import positive_int
from ram_tf.networks import positive_number

# Values of `precision` (machine.precision): see RecurrentAttentionModel.
PRECISIONS = config_lib.COMPUTE_PRECISIONS

INITIAL_LOCATIONS = config_lib.INITIAL_LOCATIONS


@keras.saving.register_keras_serializable(package="ram_tf")
class RecurrentAttentionModel(steps.HybridLossSteps, keras.Model):
    """RAM: glimpse sensor, glimpse network, core, policy, classifier.

    Args:
      glimpse_size, num_scales, backend: the `GlimpseSensor`.
      xla_sensor: XLA-compile the sensor alone (see `GlimpseSensor`).
      num_glimpses: T.
      glimpse_hidden, location_hidden, glimpse_units: `GlimpseNetwork`.
      core_units: width of the core.
      core_cell: "lstm", or "rectifier" (Mnih et al.'s MNIST core,
        `cores.RectifierCoreNetwork`).
      std: policy sigma.
      mean_bound: a in mu_t = a tanh(FC(h_t)), in (0, 1].
      initial_location: "center" (l_0 = (0, 0)) or "random" (uniform).
      reinforce_weight: lambda of the hybrid loss.
      gradient_scope: "location" (RAM: REINFORCE trains the location
        network alone, the baseline error the baseline network alone) or
        "all" (both reach every layer below them); DRAM adds "critic" and
        "where" (`ram_tf.dram`).
      mc_samples: M, rollouts per image in `train_step`.
      num_classes: 10 for MNIST.
      seed: seed of the location samples.
      precision: "float32", or "mixed_bfloat16": the matmuls of the
        glimpse network and the core (DRAM: both layers) take
        bfloat16 operands (`ram_tf.networks`); weights, activations, the
        sensor, the heads and the loss stay float32 (`PRECISIONS`).
    """

    _EXTRA_METRICS = ()  # trackers a subclass's extra_loss reports
    GRADIENT_SCOPES = config_lib.RAM_GRADIENT_SCOPES  # DRAM: all four

    def __init__(self, glimpse_size=12, num_scales=3, num_glimpses=6,
                 backend="matmul", xla_sensor=False, glimpse_hidden=128,
                 location_hidden=128,
                 glimpse_units=256, core_units=256, core_cell="lstm",
                 std=0.11, mean_bound=1.0,
                 initial_location="center", reinforce_weight=1.0,
                 gradient_scope="location", mc_samples=10, num_classes=10,
                 seed=0, precision="float32", **kwargs):
        # Impossible values fail here, named as the caller wrote them.
        for name, value in (("glimpse_size", glimpse_size),
                            ("num_scales", num_scales),
                            ("num_glimpses", num_glimpses),
                            ("glimpse_hidden", glimpse_hidden),
                            ("location_hidden", location_hidden),
                            ("glimpse_units", glimpse_units),
                            ("core_units", core_units),
                            ("mc_samples", mc_samples),
                            ("num_classes", num_classes)):
            positive_int(name, value)
        if core_cell not in cores.CORE_NETWORKS:
            raise ValueError(f"core_cell must be one of "
                             f"{tuple(cores.CORE_NETWORKS)}. Received: "
                             f"core_cell={core_cell!r}")
        if not isinstance(xla_sensor, bool):
            raise ValueError(f"xla_sensor must be True or False. Received: "
                             f"xla_sensor={xla_sensor!r}")
        positive_number("std", std)
        if positive_number("mean_bound", mean_bound) > 1:
            raise ValueError(f"mean_bound must be in (0, 1]. Received: "
                             f"mean_bound={mean_bound!r}")
        positive_number("reinforce_weight", reinforce_weight,
                        allow_zero=True)
        if initial_location not in INITIAL_LOCATIONS:
            raise ValueError(f"initial_location must be one of "
                             f"{INITIAL_LOCATIONS}. Received: "
                             f"initial_location={initial_location!r}")
        super().__init__(**kwargs)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}. "
                             f"Received: {precision!r}")
        if gradient_scope not in self.GRADIENT_SCOPES:
            raise ValueError(
                f"gradient_scope must be one of {self.GRADIENT_SCOPES} for "
                f"{type(self).__name__}. Received: {gradient_scope!r}")
        self._args = dict(
            glimpse_size=glimpse_size, num_scales=num_scales,
            num_glimpses=num_glimpses, backend=backend, xla_sensor=xla_sensor,
            glimpse_hidden=glimpse_hidden, location_hidden=location_hidden,
            glimpse_units=glimpse_units, core_units=core_units,
            core_cell=core_cell, std=std,
            mean_bound=mean_bound,
            initial_location=initial_location,
            reinforce_weight=reinforce_weight,
            gradient_scope=gradient_scope, mc_samples=mc_samples,
            num_classes=num_classes, seed=seed, precision=precision,
        )
        self.num_glimpses = num_glimpses
        self.std = float(std)
        self.initial_location = initial_location
        self.reinforce_weight = float(reinforce_weight)
        self.mc_samples = mc_samples
        self.num_classes = num_classes
        # bfloat16 operands for the glimpse network's and core's matmuls.
        self.matmul_dtype = ("bfloat16" if precision == "mixed_bfloat16"
                             else "float32")
        self.sensor = GlimpseSensor(glimpse_size, num_scales, backend,
                                    xla=xla_sensor, name="glimpse_sensor")
        self.glimpse_net = networks.GlimpseNetwork(
            glimpse_hidden, location_hidden, glimpse_units,
            matmul_dtype=self.matmul_dtype, name="glimpse_network")
        self.core = cores.CORE_NETWORKS[core_cell](
            core_units, self.matmul_dtype, name="core_network")
        self.location_net = networks.LocationNetwork(
            mean_bound, name="location_network")
        self.baseline_net = networks.BaselineNetwork(name="baseline_network")
        self.action_net = networks.ActionNetwork(num_classes,
                                                 name="action_network")
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Independent batch slices in train_step / test_step (`rollouts`):
        # how this machine computes, not part of the model or its config.
        self.chains = 1
        # RAM: l_0 is fixed or uniform, not a policy action (DRAM differs),
        # and no location labels are used (L-DRAM differs).
        self.policy_picks_first = False
        self.location_supervised = False
        # RAM: REINFORCE trains the location network alone (h_t is read
        # under stop_gradient); `ram_tf.dram` explains DRAM's scopes.
        self.gradient_scope = gradient_scope
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in dict.fromkeys(steps.TRAIN_METRICS + steps.TEST_METRICS
                                      + self._EXTRA_METRICS)
        }

    def build(self, input_shape):
        """Check the images against the glimpse; create every weight.

        Args:
          input_shape: (B, H, W, C) with H, W and C known (or a dict of
            shapes with "image").
        """
        if isinstance(input_shape, dict):
            input_shape = input_shape["image"]
        shape = tuple(input_shape)
        if len(shape) != 4 or None in shape[1:]:
            raise ValueError(
                f"{type(self).__name__} takes images [B, H, W, C] with H, W "
                f"and C known. Received input shape {shape}")
        batch, height, width, _ = shape
        self.image_shape = shape[1:]  # what `call` takes from now on
        if self.sensor.size > min(height, width):
            raise ValueError(
                f"glimpse_size={self.sensor.size} is larger than the "
                f"{height}x{width} images: it must be at most "
                f"{min(height, width)}. Received input shape {shape}")
        sensor_shape = (shape, (batch, 2))
        self.sensor.build(sensor_shape)
        self.glimpse_net.build((self.sensor.compute_output_shape(
            sensor_shape), (batch, 2)))
        self.core.build((batch, self.glimpse_net.units))
        self.build_heads(shape)

    def build_heads(self, input_shape):
        """The layers that read the core (DRAM: and the image)."""
        hidden = (input_shape[0], self.core.units)
        for layer in (self.location_net, self.baseline_net, self.action_net):
            layer.build(hidden)

    # -- the recurrence ---------------------------------------------------

    def first_location(self, batch_size):
        if self.initial_location == "random":
            return keras.random.uniform([batch_size, 2], -1.0, 1.0,
                                        seed=self.seed_generator)
        return tf.zeros([batch_size, 2])

    def begin(self, images, repeats):
        """State before the first glimpse, for B * M rollouts.

        Returns (state, h_top): h_top is None when l_0 is not an action of
        the policy (RAM: centre or uniform); DRAM returns its context here.
        """
        batch = tf.shape(images)[0] * repeats
        return self.core.initial_state(batch), None

    def step(self, images, location, state):
        """One glimpse: (x, l_{t-1}, state) -> (h_class, h_top, state).

        RAM has one core layer, so the classifier, the location network
        and the baseline all read the same h_t.
        """
        patches = self.sensor((images, location))
        g = self.glimpse_net((patches, location))
        h, state = self.core(g, state)
        return h, h, state

    @property
    def num_actions(self) -> int:
        """A: locations the policy picks per rollout (RAM T - 1, DRAM T)."""
        return self.num_glimpses - 1 + int(self.policy_picks_first)

    def _act(self, h_top, index, sample, noise_seed, noise, record):
        """l ~ pi(. | h_top): record (mu, draw, b, supervised mu), return l."""
        # Which losses may reach the layers below (`gradient_scope`).
        detach_policy = self.gradient_scope in ("location", "critic")
        detach_critic = self.gradient_scope == "location"
        mean = self.location_net(h_top, stop_gradient=detach_policy)
        if sample and noise is not None:
            draw = tf.stop_gradient(mean + self.std * noise[:, index])
        elif sample and noise_seed is not None:
            draw = mean + self.std * tf.random.stateless_normal(
                tf.shape(mean),
                tf.random.experimental.stateless_fold_in(noise_seed, index))
            draw = tf.stop_gradient(draw)
        elif sample:
            draw = mean + self.std * noise_lib.standard_normal(
                tf.shape(mean), self.seed_generator.next())
            draw = tf.stop_gradient(draw)
        else:
            draw = mean
        record["means"].append(mean)
        record["samples"].append(draw)
        record["baselines"].append(
            self.baseline_net(h_top, stop_gradient=detach_critic))
        if self.location_supervised:
            record["supervised"].append(
                self.location_net(h_top, stop_gradient=False)
                if detach_policy else mean)
        return tf.clip_by_value(draw, -1.0, 1.0)

    def call(self, images, training=False, sample=False, repeats=1,
             noise_seed=None, noise=None, step_logits=False):
        """Unroll T glimpses over `repeats` copies of each image.

        Args:
          images: [B, H, W, C], cast to float32 (or a dict with "image").
          sample: draw l_t ~ pi (training, Monte Carlo) instead of mu_t.
          repeats: M; the outputs have B * M rows, copy j of image i at row
            i * M + j. With a fixed l_0 the first glimpse is the same for
            every copy, so it is computed once per image and then repeated.
          noise_seed: optional int32 [2]; when sampling, draw the policy
            noise statelessly from it instead of the model's generator
            (exported Monte Carlo signatures: same seed, same answer).
          step_logits: also return "step_logits" [B * M, T, K], the
            classifier applied after every glimpse (for visualisation).
        """
        images = self._checked_images(images)
        record = {"means": [], "samples": [], "baselines": [],
                  "supervised": []}
        act = lambda h, i: self._act(h, i, sample, noise_seed,  # noqa: E731
                                     noise, record)
        shared_first = (repeats > 1 and self.initial_location == "center"
                        and not self.policy_picks_first)
        if shared_first:
            state, _ = self.begin(images, 1)
            location = self.first_location(tf.shape(images)[0])
            step = self.step(images, location, state)
            h_class, h_top, state = tf.nest.map_structure(
                lambda x: tf.repeat(x, repeats, axis=0), step)
            location = tf.repeat(location, repeats, axis=0)
            images = tf.repeat(images, repeats, axis=0)
        else:
            state, h_top = self.begin(images, repeats)
            images = tf.repeat(images, repeats, axis=0)
            location = (act(h_top, 0) if h_top is not None else
                        self.first_location(tf.shape(images)[0]))
        first_action = len(record["means"])
        locations, hiddens = [location], []
        for t in range(self.num_glimpses):
            if t > 0 or not shared_first:
                h_class, h_top, state = self.step(images, location, state)
            hiddens.append(h_class)
            if t == self.num_glimpses - 1:
                break
            location = act(h_top, t + first_action)
            if training:  # else NaN weights read far outside the image
                location = steps.finite(location, "policy")
            locations.append(location)
        batch = tf.shape(images)[0]
        out = {"logits": self.action_net(h_class),
               "locations": tf.stack(locations, axis=1)}
        for key in ("means", "samples", "supervised", "baselines"):
            empty = tf.zeros([batch, 0] + ([] if key == "baselines" else [2]))
            out[key] = (tf.stack(record[key], axis=1) if record[key]
                        else empty)
        if step_logits:
            # What the classifier would answer after each glimpse.
            out["step_logits"] = tf.stack(
                [self.action_net(x) for x in hiddens], axis=1)
        return out

    def _checked_images(self, images):
        """float32 images of the [H, W, C] the model was built for: its
        weights (the glimpse network's input, DRAM's context) fit one size
        and channel count only."""
        images = as_images(images)
        built = getattr(self, "image_shape", None)
        got = tuple(images.shape)
        if built and (len(got) != 4 or any(
                g is not None and g != b for g, b in zip(got[1:], built))):
            h, w, c = built
            raise ValueError(
                f"{type(self).__name__} was built for images [B, {h}, {w}, "
                f"{c}]; received shape {got}. It answers at the size and "
                "channel count it was built with: resize or pad the images, "
                "or build another model for them")
        if built and None in got[1:]:
            # A trace Keras relaxed after a call at another size: the
            # sensor needs static sizes, and the error comes at run time.
            images = tf.ensure_shape(images, (None, *built))
        return images

    def rollouts(self, images, training=False, sample=False, repeats=1,
                 noise=None):
        """`call` on `self.chains` slices of the batch, outputs concatenated
        in `call`'s row order (`ram_tf.chains.run`). When sampling without
        `noise`, it is drawn here once, [B * M, A, 2] (`ram_tf.noise`), and
        sliced like the rows (a random l_0, RAM's initial_location="random",
        is still drawn per slice). Under a strategy with N replicas, each
        draws it for the global batch of N B images and keeps its own rows
        (`ram_tf.distribute.replica_rows`): the draws of one device."""
        images = as_images(images)
        if sample and noise is None:
            rows = tf.shape(images)[0] * repeats
            noise = distribute.replica_rows(noise_lib.standard_normal(
                [rows * distribute.replicas_in_sync(), self.num_actions, 2],
                self.seed_generator.next()), rows)
        return chains.run(
            lambda x, z: self(x, training=training, sample=sample,
                              repeats=repeats, noise=z),
            images, self.chains, repeats, noise)

    def get_config(self):
        return {**super().get_config(), **self._args}
