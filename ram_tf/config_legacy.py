"""The previous config layouts, read as the current one.

The machine settings (sensor backend, sensor XLA, precision, chains,
whole-step XLA) once lived in the glimpse and train groups; they are now
the `machine` group of `ram_tf.config.MachineConfig`, because they say how
a machine computes an experiment rather than which experiment it is. Run
directories written before the move still hold `config.json` files of the
old layout, and the old override keys ("train.precision",
"glimpse.backend", ...) still name their settings: both load by moving
each old (group, field) to its machine field here, before the config is
built.

DRAM's context network once resized the image bilinearly, with no setting;
`core.context_resize` now names that choice, and a DRAM or L-DRAM config
written without it is read as "bilinear", what its run computed.
"""

from __future__ import annotations

from typing import Any

# Where the previous layout kept the machine settings: (group, field) ->
# MachineConfig field.
LEGACY_MACHINE_FIELDS = {
    ("glimpse", "backend"): "backend",
    ("glimpse", "xla"): "xla",
    ("train", "precision"): "precision",
    ("train", "chains"): "chains",
    ("train", "jit_compile"): "jit_compile",
}


def current_place(group: str, field: str) -> tuple[str, str]:
    """The (group, field) an override key names now: its machine field if
    it is one of the old places, else itself."""
    if (group, field) in LEGACY_MACHINE_FIELDS:
        return "machine", LEGACY_MACHINE_FIELDS[group, field]
    return group, field


def move_machine_fields(groups: dict[str, dict[str, Any]]) -> None:
    """Moves machine settings in their old places into groups["machine"],
    in place; a value already under "machine" is kept."""
    for (group, field), new in LEGACY_MACHINE_FIELDS.items():
        if field in groups[group]:
            value = groups[group].pop(field)
            groups["machine"].setdefault(new, value)


def fill_context_resize(model: str, groups: dict[str, dict[str, Any]]) -> None:
    """Sets core.context_resize to "bilinear" in a DRAM / L-DRAM config
    that lacks it, in place: what the context network did before the
    setting existed."""
    if model in ("dram", "ldram"):
        groups["core"].setdefault("context_resize", "bilinear")
