"""Experiment configuration: frozen dataclasses, resolved from presets.

A run is fully described by an `ExperimentConfig` (model name, task name,
the five experiment groups glimpse / core / policy / data / train, and the
`machine` group). The experiment groups say what is computed; `machine`
(`MachineConfig`: sensor backend, XLA, precision, chains, jit_compile,
distribute, replicas) says how this machine computes it, and may differ
between machines and on resume (see `ram_tf.training`).
`resolve(model, task, overrides)` starts from the papers' defaults for that
task and model (`ram_tf.presets`) and applies the overrides;
`ram_tf.validation.validate` rejects impossible settings with a message
that names the setting, the value received and what is allowed.
The resolved config is written as `config.json` into every run directory
and read back with `ExperimentConfig.from_json`.

Sizes follow Mnih et al. 2014 as implemented by the seed project,
PrincipalComponent/ram.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ram_tf import config_legacy
from ram_tf.config_legacy import LEGACY_MACHINE_FIELDS  # noqa: F401 (public)
from ram_tf.presets import MODEL_PRESETS
from ram_tf.presets import TASKS

BACKENDS = ("matmul", "gather", "extract_glimpse")  # of the glimpse sensor

ATTENTION_MODELS = ("ram", "dram", "ldram")
# (filters, stride) of the cnn6 baseline's 3x3 convolutions, in order
# (`ram_tf.baselines.DeepConvolutionalBaseline`); a 2x2 max pool follows
# every second one. The stride-2 first layer keeps a 100x100 canvas near 50
# MFLOPs per image: the digit is 28 pixels wide, so 14 still carry its
# strokes.
DEEP_CONVS = ((16, 2), (16, 1), (32, 1), (32, 1), (64, 1), (64, 1))
# Deterministic classifiers trained by cross-entropy alone (ram_tf.baselines).
BASELINE_MODELS = ("fc", "cnn", "cnn6")
MODELS = ATTENTION_MODELS + BASELINE_MODELS
# The values of policy.gradient_scope (PolicyConfig): all four for DRAM;
# "critic" and "where" name DRAM's top layer and context, which RAM lacks.
GRADIENT_SCOPES = ("location", "critic", "where", "all")
RAM_GRADIENT_SCOPES = ("location", "all")
INITIAL_LOCATIONS = ("center", "random")  # policy.initial_location
# core.core_cell: an LSTM (PrincipalComponent/ram), or Mnih et al.'s rectifier
# units (their MNIST classification core); DRAM's two layers are LSTMs.
CORE_CELLS = ("lstm", "rectifier")
# core.context_resize: how DRAM's context network shrinks the image to
# context_size^2. "area" averages k x k blocks (k = floor(N / s)) before a
# bilinear resize, so every pixel counts; "bilinear" alone reads 2x2
# neighbourhoods s apart, point samples that miss whole digits once N / s is
# much above 2 (`ram_tf.networks.ContextNetwork`).
CONTEXT_RESIZES = ("area", "bilinear")
LABEL_MASKS = ("fixed", "per-batch")  # policy.label_mask
# How a model computes: the glimpse network and core in float32 or bfloat16.
COMPUTE_PRECISIONS = ("float32", "mixed_bfloat16")
# machine.precision: one of those, or "auto": bfloat16 where the CPU multiplies
# it natively (`ram_tf.runtime.resolve_precision`), else float32.
PRECISIONS = ("auto",) + COMPUTE_PRECISIONS
STRATEGIES = ("none", "mirrored", "multi-worker")  # machine.distribute


class ConfigError(ValueError):
    """An impossible or unknown setting; the message says what is allowed."""


@dataclasses.dataclass(frozen=True)
class GlimpseConfig:
    """The glimpse sensor and how many glimpses are taken.

    Attributes:
      size: side g of each square patch after resizing (pixels).
      num_scales: k patches of side g, 2g, 4g, ... around each location.
      num_glimpses: T, glimpses per image; the last core state is classified.

    How the sensor is computed (backend, XLA) is in `MachineConfig`.
    """

    size: int = 12  # 12x12 for 60x60 canvases (Mnih et al. 2014, Sec. 4.1)
    num_scales: int = 3  # 12, 24, 48: the largest scale sees most of 60x60
    num_glimpses: int = 6  # the headline RAM-6 rows of Tables 1-2


@dataclasses.dataclass(frozen=True)
class CoreConfig:
    """Glimpse network and recurrent core widths.

    Attributes:
      glimpse_hidden: width of h_g = ReLU(FC(patches)).
      location_hidden: width of h_l = ReLU(FC(l)).
      glimpse_units: width of g_t = ReLU(FC(h_g) + FC(h_l)).
      core_units: units of the core.
      core_cell: "lstm", or "rectifier": h_t = ReLU(W g_t + U h_{t-1} + b),
        the core of Mnih et al.'s classification experiments (RAM only).
      core_layers: stacked LSTM layers (DRAM: 2; the classifier reads the
        bottom one, the location and baseline networks the top one).
      context_size, context_filters, context_kernels: DRAM's context
        network, a CNN on the image resized to context_size^2 whose output
        (FC core_units) starts the top layer and picks l_0.
      context_resize: how the image is resized for it (`CONTEXT_RESIZES`).
      fc_units: hidden width of the fully connected baseline.
    """

    glimpse_hidden: int = 128  # PrincipalComponent/ram: FC 144 -> 128
    location_hidden: int = 128  # PrincipalComponent/ram: FC 2 -> 128
    glimpse_units: int = 256  # -> 256 for both pathways
    core_units: int = 256  # LSTM 256 as in PrincipalComponent/ram
    core_cell: str = "lstm"  # PrincipalComponent/ram; Mnih et al.: rectifier
    core_layers: int = 1  # RAM 1; DRAM stacks 2 (Ba et al. 2014)
    context_size: int = 24  # DRAM: side of the downsampled whole image
    context_filters: tuple = (32, 32)  # the seed: {5x5, 32} -> {3x3, 32}
    context_kernels: tuple = (5, 3)
    # "area": on a 200x200 canvas bilinear alone keeps under 1 % of the ink
    # of one digit in 20 (docs/model.md, "The context network").
    context_resize: str = "area"
    fc_units: int = 256  # FC baseline width (Mnih et al. 2014: 64 or 256)


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """The Gaussian location policy and its REINFORCE weight.

    Attributes:
      std: sigma of l_t ~ Normal(mu_t, sigma), in [-1, 1] units.
      mean_bound: a in mu_t = a tanh(FC(h_t)); below 1 the policy means
        stay inside the canvas (the seed's DRAM has a = 0.8).
      initial_location: "center" or "random" (uniform in [-1, 1]^2).
      reinforce_weight: lambda in CE + MSE + lambda * REINFORCE.
      gradient_scope: which layers REINFORCE and the baseline error train
        (`GRADIENT_SCOPES`): "location" the location and baseline networks
        only (RAM); "critic" the baseline error also trains DRAM's top
        core layer and context network, the pathway that feeds only the
        policy (DRAM default); "where" REINFORCE too; "all" both reach
        every layer, the bottom layer the classifier reads included.
      location_loss_weight, location_loss_decay: L-DRAM's gamma_t =
        gamma_0 * decay^floor(step / train.lr_decay_steps) on the squared
        distance between policy means and the true digit centre.
      label_fraction: share of training images whose centre is used.
      label_mask: "fixed" (a seeded subset of the 55,000 digits, the same
        in every epoch and after a resume) or "per-batch" (redrawn for
        every batch, as PrincipalComponent/ram did).
    """

    std: float = 0.11  # the seed's; larger explores more, learns slower
    mean_bound: float = 1.0  # Mnih et al.: mu_t = tanh(FC(h_t))
    initial_location: str = "center"  # Mnih et al. start at the centre
    reinforce_weight: float = 1.0  # the location net sees only this term
    # DRAM's default is "critic": REINFORCE in deep layers pinned the
    # policy to the border (ram_tf.dram; docs/model.md, "DRAM gradient
    # scopes").
    gradient_scope: str = "location"
    location_loss_weight: float = 0.0  # L-DRAM gamma_0; 0 = no labels used
    location_loss_decay: float = 0.97  # gamma_0 * 0.97^floor(step / 1750)
    label_fraction: float = 1.0  # share of training digits with a centre
    label_mask: str = "fixed"  # "fixed" seeded subset, or "per-batch"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How MNIST digits become a task's canvases.

    Attributes:
      canvas_size: side N of the square canvas (28 = plain MNIST).
      min_distractors / max_distractors: D drawn uniformly per image.
      distractor_size: side of the square pieces cut from other digits.
      color: write each digit and distractor into one random RGB channel.
      seed: placement seed of validation and test canvases (fixed: every
        run and machine scores the same images).
    """

    canvas_size: int = 60
    min_distractors: int = 0
    max_distractors: int = 0
    distractor_size: int = 8  # Mnih et al. 2014: 8x8 subpatches
    color: bool = False
    seed: int = 1406  # arXiv 1406.6247; any fixed value would do

    @property
    def channels(self) -> int:
        return 3 if self.color else 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe of PrincipalComponent/ram.

    Attributes:
      steps: total updates (mini-batches).
      batch_size: images per update, before Monte Carlo copies.
      mc_samples: M rollouts per image in training and in MC evaluation.
      learning_rate / lr_decay / lr_decay_steps / min_learning_rate:
        Adam lr * decay^floor(step / decay_steps), floored.
      clipnorm: global-norm gradient clipping.
      steps_per_epoch: updates between validation runs and checkpoints.
      seed: seeds weights, training placements and location samples.

    Precision, chains and whole-step XLA are in `MachineConfig`.
    """

    steps: int = 60_000  # RAM's recipe (the seed)
    batch_size: int = 32
    mc_samples: int = 10  # 32 images -> 320 rollouts per update
    learning_rate: float = 1e-3
    lr_decay: float = 0.97
    lr_decay_steps: int = 1750  # about one epoch of 55k images at 32
    min_learning_rate: float = 1e-4
    clipnorm: float = 5.0
    steps_per_epoch: int = 1000  # a validation point every 1000 updates
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class MachineConfig:
    """How a machine computes an experiment, not which experiment it is.

    Every setting here computes the same experiment: the same batches,
    location draws and updates, up to the rounding of the arithmetic it
    picks (bfloat16 rounds matmul operands to 8 significant bits; replicas
    and chains change the order of sums). So a run may be trained, resumed
    or reproduced with other values; `results.json` records what was used
    (`ram_tf.devices.Plan`).

    Attributes:
      backend: glimpse sensor kernel: "matmul" or "gather" (TFLite
        builtins, XLA) or "extract_glimpse" (the `tf.image.extract_glimpse`
        reference; no XLA kernel); see `ram_tf.glimpse`.
      xla: XLA-compile the sensor on its own.
      precision: "auto" (default), "float32", or "mixed_bfloat16" (the
        glimpse network and the core compute in bfloat16 with float32
        weights; oneDNN kernels, see `ram_tf.model`). "auto" is
        mixed_bfloat16 on a CPU with AVX512-BF16 or AMX when TensorFlow
        runs oneDNN, else float32 (`ram_tf.runtime.resolve_precision`);
        exports are float32 either way.
      chains: independent slices of each batch computed concurrently, one
        per group of cores (`ram_tf.runtime.plan_chains`); 0 = automatic (2
        on a multi-core CPU). The same numbers for any count, to float
        rounding.
      jit_compile: XLA-compile the whole train step (not with
        extract_glimpse); "auto" (default): on a GPU, not on a CPU
        (`ram_tf.devices.choose`).
      distribute: "none" (default), "mirrored" (`tf.distribute.
        MirroredStrategy` over this machine's GPUs, or over `replicas`
        logical CPU devices) or "multi-worker" (`MultiWorkerMirrored
        Strategy`, the cluster from TF_CONFIG); see `ram_tf.distribute`.
        The global batch stays `train.batch_size`, split across replicas.
      replicas: devices per worker under a strategy; 0 = automatic (every
        GPU, or the CPU as one device). Without GPUs, N > 1 splits the CPU
        into N logical devices.
    """

    # matmul: the fastest sensor in TensorFlow (docs/performance.md,
    # "Design decisions"); all three give the same patches to float rounding.
    backend: str = "matmul"
    # XLA on the sensor alone rather than the whole step: measured faster.
    xla: bool = True
    # auto: bfloat16 only where the CPU multiplies it natively, so a run
    # never pays for emulated bfloat16.
    precision: str = "auto"
    # 0: automatic, so one config runs well on 2 cores and on 64.
    chains: int = 0
    # auto: on a GPU only; whole-step XLA measured slower on a CPU than
    # XLA on the sensor.
    jit_compile: bool | str = "auto"
    distribute: str = "none"
    replicas: int = 0



@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    model: str
    task: str
    glimpse: GlimpseConfig
    core: CoreConfig
    policy: PolicyConfig
    data: DataConfig
    train: TrainConfig
    machine: MachineConfig = MachineConfig()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExperimentConfig":
        """Fields missing from `d` (older runs) take their defaults; an
        unknown or impossible setting is a `ConfigError` (`validate`).

        Machine settings in their old places (glimpse.backend, glimpse.xla,
        train.precision, train.chains, train.jit_compile) move to `machine`,
        and a DRAM config without core.context_resize resized bilinearly
        (`ram_tf.config_legacy`).
        """
        if not isinstance(d, dict):
            raise ConfigError("not an ExperimentConfig: not a JSON object")
        missing = [k for k in ("model", "task") if k not in d]
        if missing or not all(isinstance(d.get(g, {}), dict) for g in GROUPS):
            raise ConfigError(
                f"not an ExperimentConfig: {' and '.join(missing)} missing"
                if missing else "not an ExperimentConfig: a group is not "
                "a mapping of settings")
        for key in sorted(set(d) - {"model", "task", *GROUPS}):
            raise ConfigError(f"unknown setting group {key!r}; expected model"
                              f", task and the groups {', '.join(GROUPS)}")
        groups = {name: dict(d.get(name, {})) for name in GROUPS}
        config_legacy.move_machine_fields(groups)
        config_legacy.fill_context_resize(d["model"], groups)
        kwargs = {"model": d["model"], "task": d["task"]}
        for name, klass in GROUPS.items():
            fields = groups[name]
            known = {f.name for f in dataclasses.fields(klass)}
            for key, value in fields.items():
                if key not in known:
                    raise ConfigError(f"unknown setting '{name}.{key}'")
                if isinstance(value, list):  # JSON has no tuples
                    fields[key] = tuple(value)
            kwargs[name] = klass(**fields)
        config = cls(**kwargs)
        from ram_tf import validation  # it reads this module

        validation.validate(config)
        return config

    @classmethod
    def from_json(cls, text: str) -> "ExperimentConfig":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"not an ExperimentConfig: not JSON ({e})")


# The groups of an ExperimentConfig, in order: name -> dataclass.
GROUPS = {
    "glimpse": GlimpseConfig,
    "core": CoreConfig,
    "policy": PolicyConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "machine": MachineConfig,
}
# The groups that say what is computed (all but "machine").
EXPERIMENT_GROUPS = tuple(g for g in GROUPS if g != "machine")

def resolve(
    model: str, task: str, overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Build the config of `model` on `task`, then apply `overrides`.

    Args:
      model: one of `MODELS`.
      task: one of `TASKS`.
      overrides: {"group.field": value}, e.g. {"glimpse.num_scales": 2};
        None values are ignored (unset CLI options). The old keys of the
        machine settings ("glimpse.backend", "train.precision", ...) mean
        their "machine.*" keys.

    Raises:
      ConfigError: unknown model, task or field, or an impossible value.
    """
    if model not in MODELS:
        raise ConfigError(
            f"unknown model {model!r}; allowed: {', '.join(MODELS)}"
        )
    if task not in TASKS:
        raise ConfigError(
            f"unknown task {task!r}; allowed: {', '.join(TASKS)}"
        )
    values: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
    for preset in (TASKS[task], MODEL_PRESETS[model]):
        for group, fields in preset.items():
            values[group].update(fields)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        group, _, field = key.partition(".")
        group, field = config_legacy.current_place(group, field)
        known = ({f.name for f in dataclasses.fields(GROUPS[group])}
                 if group in GROUPS else set())
        if field not in known:
            raise ConfigError(
                f"unknown setting {key!r}; settings are group.field with "
                f"groups {', '.join(GROUPS)}"
            )
        # Lists as from JSON: the config holds tuples.
        values[group][field] = tuple(value) if isinstance(value, list) \
            else value
    config = ExperimentConfig(
        model=model,
        task=task,
        **{g: GROUPS[g](**values[g]) for g in GROUPS},
    )
    from ram_tf import validation  # it reads this module

    validation.validate(config)
    return config
