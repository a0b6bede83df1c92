"""The presets: what each task and each model sets before a user's
overrides (`ram_tf.config.resolve` applies task, then model, then the
overrides). Values are {group: {field: value}} of `ExperimentConfig`'s
groups; `docs/model.md` and the papers give the reasons.
"""

from typing import Any

# Task presets: the canvas recipe and the glimpse settings the papers used.
# 100x100 and larger canvases use 4 scales so the coarsest patch (12 * 8 = 96)
# covers most of the image (Mnih et al. 2014, cluttered 100x100).
TASKS: dict[str, dict[str, dict[str, Any]]] = {
    "mnist28": {
        "data": {"canvas_size": 28},
        "glimpse": {"size": 8, "num_scales": 1, "num_glimpses": 6},
    },
    "translated60": {
        "data": {"canvas_size": 60},
        "glimpse": {"size": 12, "num_scales": 3, "num_glimpses": 6},
    },
    "translated100": {
        "data": {"canvas_size": 100},
        "glimpse": {"size": 12, "num_scales": 4, "num_glimpses": 6},
    },
    "cluttered60": {
        "data": {"canvas_size": 60, "min_distractors": 4, "max_distractors": 4},
        "glimpse": {"size": 12, "num_scales": 3, "num_glimpses": 6},
    },
    "cluttered100": {
        "data": {
            "canvas_size": 100,
            "min_distractors": 8,
            "max_distractors": 8,
        },
        "glimpse": {"size": 12, "num_scales": 4, "num_glimpses": 6},
    },
    "cluttered250": {
        # [3] gives no distractor count for 250x250; 25 keeps the density of
        # cluttered100 within a factor of ~2. 20x20 glimpses as in [3].
        "data": {
            "canvas_size": 250,
            "min_distractors": 25,
            "max_distractors": 25,
        },
        "glimpse": {"size": 20, "num_scales": 3, "num_glimpses": 8},
    },
    "cluttered_var100": {
        "data": {
            "canvas_size": 100,
            "min_distractors": 4,
            "max_distractors": 20,
        },
        "glimpse": {"size": 12, "num_scales": 4, "num_glimpses": 6},
    },
    "cluttered_var200": {
        "data": {
            "canvas_size": 200,
            "min_distractors": 4,
            "max_distractors": 50,
        },
        "glimpse": {"size": 12, "num_scales": 4, "num_glimpses": 4},
    },
}


# What each model changes from the defaults (Ba et al. 2015; the seed).
MODEL_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "ram": {},
    "dram": {"core": {"core_layers": 2}, "glimpse": {"num_scales": 2},
             "policy": {"gradient_scope": "critic"}},
    "ldram": {"core": {"core_layers": 2}, "glimpse": {"num_scales": 2},
              "policy": {"gradient_scope": "critic",
                         "location_loss_weight": 1.0}},
    "fc": {},
    "cnn": {},
    "cnn6": {},
}
