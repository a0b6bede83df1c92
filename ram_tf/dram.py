"""DRAM (Ba et al. 2015) and L-DRAM (DRAM + a supervised location loss).

DRAM changes three things in RAM (`ram_tf.model`), as PrincipalComponent/ram
implements them:
- a context network C sees the whole image at low resolution,
    c = ReLU(FC(CNN(resize(x, s x s))))          [B, 256]
  and starts the top core layer (r2_0 = c), so the first location is an
  action of the policy: l_0 ~ Normal(tanh(FC(c)), sigma);
- the core is two stacked LSTMs, r1_t = LSTM1(g_t), r2_t = LSTM2(r1_t);
- the classifier reads the bottom layer r1_T, the location and baseline
  networks read the top layer r2_t ("what" below, "where" above);
- the context network and the top layer (the "where" pathway) feed only
  the policy and the baseline, so the policy's losses must train them.
  `gradient_scope` says which; the top layer reads stop_gradient(r1_t)
  unless it is "all", so the bottom layer and the glimpse network learn
  from the cross-entropy alone, as in RAM:
    "critic" (default): the baseline error trains the where pathway,
      REINFORCE the location network alone (it reads stop_gradient(r2_t));
    "where": REINFORCE trains the where pathway too;
    "location": RAM's routing; the where pathway learns nothing (only
      L-DRAM's location loss shapes it);
    "all": both terms reach every layer (Ba et al. 2015 train the whole
      network on the hybrid loss).
  The sampled locations and glimpse pixels carry no gradient.

Why "critic": a policy gradient is mostly noise until rewards rise above
chance, and Adam turns noise into full-size steps on every weight it
reaches; summed over the ~830,000 weights of the where pathway, those
steps throw the policy means into tanh's flat tails, where the gradient
vanishes and the glimpses stay at the border. Measured (docs/model.md,
"DRAM gradient scopes"): with "all" DRAM on cluttered60 stayed at chance with
90 % of its means saturated after 700 updates; "where" learnt cluttered60
fast but on cluttered100 ended its first 1,000 updates at chance with the
validation glimpses at |l| = 0.996; "critic" and "location" kept every
mean unsaturated on cluttered100 and learnt.

L-DRAM adds gamma_t * L_loc to the hybrid loss, with
    L_loc = (1 / n_lab) sum_{labelled n} sum_t || mu_{n,t} - y_n ||^2,
y_n the true digit centre in glimpse coordinates, mu_{n,t} the policy means
(all T actions, l_0 included) computed without `stop_gradient`, so labels
shape the top core layer and the context network too (under gradient
scope "all" also the bottom layer and the glimpse network), and
gamma_t = gamma_0 * decay^floor(step / decay_steps). Unlabelled images
contribute nothing: they are out of the sum and out of n_lab. L-DRAM's
batches therefore carry each image's true centre, "location" [B, 2], and
optionally "labelled" [B]: dicts {"image", "label", "location"}, or
Keras-style (x, {"label": y, "location": centres}).
"""

from __future__ import annotations

import numbers

import keras
import tensorflow as tf

from ram_tf import config as config_lib
from ram_tf import cores
from ram_tf import reinforce
from ram_tf.model import RecurrentAttentionModel
from ram_tf.networks import ContextNetwork
from ram_tf.networks import positive_int
from ram_tf.networks import positive_number


@keras.saving.register_keras_serializable(package="ram_tf")
class DeepRecurrentAttentionModel(RecurrentAttentionModel):
    """DRAM / L-DRAM; arguments as `RecurrentAttentionModel`, plus

    Args:
      context_size, context_filters, context_kernels, context_resize:
        `ContextNetwork`'s size, filters, kernels and resize.
      location_loss_weight: gamma_0 (> 0 makes this L-DRAM).
      location_loss_decay, location_loss_decay_steps: the gamma schedule.
      gradient_scope: "critic" (default), "location", "where" or "all"
        (above).
    """

    _EXTRA_METRICS = ("location_loss",)
    GRADIENT_SCOPES = config_lib.GRADIENT_SCOPES

    def __init__(self, context_size=24, context_filters=(32, 32),
                 context_kernels=(5, 3), context_resize="area",
                 location_loss_weight=0.0,
                 location_loss_decay=0.97, location_loss_decay_steps=1750,
                 gradient_scope="critic", **kwargs):
        if kwargs.get("core_cell", "lstm") != "lstm":
            raise ValueError(
                "DRAM's two core layers are LSTMs; the rectifier core is "
                f"RAM's. Received: core_cell={kwargs['core_cell']!r}")
        positive_int("context_size", context_size)
        for name, values in (("context_filters", context_filters),
                             ("context_kernels", context_kernels)):
            if not isinstance(values, (list, tuple)):
                raise ValueError(
                    f"{name} takes one positive integer per conv layer, "
                    f"e.g. (32, 32). Received: {name}={values!r}")
            for value in values:
                if (isinstance(value, bool)
                        or not isinstance(value, numbers.Integral)
                        or value < 1):
                    raise ValueError(
                        f"{name} must be positive integers. Received: "
                        f"{name}={list(values)!r}")
        if len(context_filters) != len(context_kernels):
            raise ValueError(
                "context_filters and context_kernels need one entry per "
                f"conv layer. Received: context_filters="
                f"{list(context_filters)}, context_kernels="
                f"{list(context_kernels)}")
        if context_size < 2 ** len(context_filters):
            raise ValueError(
                f"context_size must be at least {2 ** len(context_filters)}:"
                f" each of the {len(context_filters)} conv layers halves it."
                f" Received: context_size={context_size!r}")
        if context_resize not in config_lib.CONTEXT_RESIZES:
            raise ValueError(
                f"context_resize must be one of "
                f"{list(config_lib.CONTEXT_RESIZES)}. "
                f"Received: context_resize={context_resize!r}")
        positive_number("location_loss_weight", location_loss_weight,
                        allow_zero=True)
        positive_number("location_loss_decay", location_loss_decay)
        positive_int("location_loss_decay_steps", location_loss_decay_steps)
        super().__init__(gradient_scope=gradient_scope, **kwargs)
        self._args.update(dict(
            context_size=context_size, context_filters=list(context_filters),
            context_kernels=list(context_kernels),
            context_resize=context_resize,
            location_loss_weight=location_loss_weight,
            location_loss_decay=location_loss_decay,
            location_loss_decay_steps=location_loss_decay_steps))
        units = self._args["core_units"]
        self.context_net = ContextNetwork(context_size, context_filters,
                                          context_kernels, units,
                                          context_resize,
                                          name="context_network")
        self.top_core = cores.CoreNetwork(units, self.matmul_dtype,
                                             name="top_core_network")
        self.policy_picks_first = True
        self.location_loss_weight = float(location_loss_weight)
        self.location_loss_decay = float(location_loss_decay)
        self.location_loss_decay_steps = int(location_loss_decay_steps)
        self.location_supervised = self.location_loss_weight > 0

    @classmethod
    def from_config(cls, config):
        # A model saved before context_resize existed resized bilinearly.
        return super().from_config({"context_resize": "bilinear", **config})

    def build_heads(self, input_shape):
        super().build_heads(input_shape)
        self.context_net.build(input_shape)
        self.top_core.build((input_shape[0], self.core.units))

    def begin(self, images, repeats):
        # The context is computed once per image, then repeated M times.
        context = tf.repeat(self.context_net(images), repeats, axis=0)
        zeros = tf.zeros_like(context)
        return [[zeros, zeros], [context, zeros]], context

    def step(self, images, location, state):
        bottom, top = state
        patches = self.sensor((images, location))
        g = self.glimpse_net((patches, location))
        r1, bottom = self.core(g, bottom)
        # Only "all" lets the policy's losses into the bottom layer.
        r2, top = self.top_core(
            r1 if self.gradient_scope == "all" else tf.stop_gradient(r1),
            top)
        return r1, r2, [bottom, top]

    def gamma(self):
        """gamma_t = gamma_0 * decay^floor(step / decay_steps)."""
        step = tf.cast(self.optimizer.iterations, tf.float32)
        return self.location_loss_weight * self.location_loss_decay ** tf.floor(
            step / self.location_loss_decay_steps)

    def check_batch(self, data):
        if not self.location_supervised:
            return
        if "location" not in data:
            raise ValueError(
                f"L-DRAM (location_loss_weight={self.location_loss_weight})"
                " learns from each image's true centre: its batches need "
                "'location' [B, 2], (y, x) in [-1, 1], e.g. fit(x, "
                "{'label': y, 'location': centres}) or dicts with 'image', "
                "'label' and 'location'. Received a batch with "
                f"{sorted(data)}")
        shape = tf.TensorShape(data["location"].shape)
        # Unknown sizes (a trace Keras relaxed) are checked at run time.
        if shape.rank not in (None, 2) or (shape.rank == 2 and
                                           shape[-1] not in (None, 2)):
            raise ValueError(
                "L-DRAM's 'location' holds each image's true centre (y, x) "
                f"in [-1, 1], shape [B, 2]. Received shape {shape}")

    def extra_loss(self, data, out, repeats, sample_weight=None):
        if not self.location_supervised:
            return {}
        target = tf.repeat(data["location"], repeats, axis=0)
        labelled = data.get("labelled")
        if labelled is None:
            labelled = tf.ones_like(data["label"], tf.float32)
        labelled = tf.repeat(tf.cast(labelled, tf.float32), repeats, axis=0)
        value = reinforce.location_loss(out["supervised"], target, labelled,
                                        sample_weight)
        return {"location_loss": (self.gamma(), value)}
