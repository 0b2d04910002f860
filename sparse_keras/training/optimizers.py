"""Optimizers and learning-rate schedules from a config (``config.optimizer``, ``config.schedule``).

Schedules count optimizer steps; configs give boundaries in epochs, so one config serves a smoke run and
the paper's run alike. Weight decay is Keras' (decoupled from the gradient, scaled by the learning rate).
"""

import keras

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "piecewise", "cosine")


def check(optimizer_config, schedule_config):
    """Raises ``ValueError`` naming the bad key and value; nothing is built."""
    name = optimizer_config.name
    if name not in OPTIMIZERS:
        raise ValueError(f"config.optimizer.name must be one of {OPTIMIZERS}, got {name!r}")
    for key in ("learning_rate",):
        value = optimizer_config[key]
        if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"config.optimizer.{key} must be a finite positive number, got {value!r}")
    for key in ("momentum", "weight_decay"):
        value = optimizer_config.get(key, 0.0)
        if not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ValueError(f"config.optimizer.{key} must be a finite non-negative number, got {value!r}")
    if optimizer_config.get("momentum", 0.0) >= 1:
        raise ValueError(f"config.optimizer.momentum must be below 1, got {optimizer_config.momentum!r}")
    if schedule_config.name not in SCHEDULES:
        raise ValueError(f"config.schedule.name must be one of {SCHEDULES}, got {schedule_config.name!r}")
    boundaries = list(schedule_config.get("boundaries", ()))
    if any(not isinstance(b, (int, float)) or b <= 0 for b in boundaries) or boundaries != sorted(boundaries):
        raise ValueError(f"config.schedule.boundaries must be increasing positive epochs, got {tuple(boundaries)!r}")
    decay = schedule_config.get("decay", 0.1)
    if not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ValueError(f"config.schedule.decay must be in (0, 1], got {decay!r}")
    warmup = schedule_config.get("warmup_epochs", 0.0)
    if not isinstance(warmup, (int, float)) or warmup < 0:
        raise ValueError(f"config.schedule.warmup_epochs must be a non-negative number, got {warmup!r}")


def learning_rate(schedule_config, base, steps_per_epoch, epochs):
    """A float or a ``keras.optimizers.schedules.LearningRateSchedule`` over optimizer steps."""
    name = schedule_config.name
    if name == "constant":
        return float(base)
    if name == "piecewise":
        boundaries = [int(round(b * steps_per_epoch)) for b in schedule_config.boundaries]
        values = [float(base) * schedule_config.decay**i for i in range(len(boundaries) + 1)]
        if not boundaries:
            return float(base)
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    warmup_steps = int(round(schedule_config.get("warmup_epochs", 0.0) * steps_per_epoch))
    total = max(int(epochs * steps_per_epoch) - warmup_steps, 1)
    floor = float(schedule_config.get("final_learning_rate", 0.0)) / float(base)  # PyTorch's eta_min
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0, total, alpha=floor, warmup_target=float(base), warmup_steps=warmup_steps
        )
    return keras.optimizers.schedules.CosineDecay(float(base), total, alpha=floor)


def make(optimizer_config, schedule_config, steps_per_epoch, epochs, loss_scale=False):
    """The Keras optimizer; wrapped in a ``LossScaleOptimizer`` for float16 mixed precision."""
    check(optimizer_config, schedule_config)
    lr = learning_rate(schedule_config, optimizer_config.learning_rate, steps_per_epoch, epochs)
    decay = optimizer_config.get("weight_decay", 0.0) or None
    name = optimizer_config.name
    if name == "sgd":
        optimizer = keras.optimizers.SGD(
            lr, momentum=optimizer_config.get("momentum", 0.0), nesterov=optimizer_config.get("nesterov", False),
            weight_decay=decay,
        )
    elif name == "adam":
        optimizer = keras.optimizers.Adam(lr, weight_decay=decay)
    else:
        optimizer = keras.optimizers.AdamW(lr, weight_decay=decay or 0.004)
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scale else optimizer


def current_learning_rate(optimizer):
    """The learning rate the next step uses (for logs and summaries)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return float(keras.ops.convert_to_numpy(lr))
