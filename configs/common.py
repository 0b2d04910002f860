"""The one config schema of `python -m train.train`: every method's experiments are written with it.

    config.model      name (registry), kwargs (builder arguments, e.g. lrsd=True, rank=1)
    config.data       name (tfds), data_dir, batch_size (global), train_examples (None: whole split), augment,
                      normalize_mean / normalize_std (None: images stay in [0, 1])
    config.optimizer  name (sgd|adam|adamw), learning_rate, momentum, nesterov, weight_decay
    config.schedule   name (constant|piecewise|cosine), boundaries (epochs, floats), decay (factor per boundary),
                      warmup_epochs, final_learning_rate (cosine floor)
    config.epochs     training epochs
    config.method     name (none|ssr|admm|lrsd|lst|csc) plus that method's own keys
    config.mixed_precision  None, "mixed_bfloat16" or "mixed_float16"
    config.strategy   auto (MirroredStrategy over local devices; MultiWorker when TF_CONFIG names several
                      workers) | mirrored | multi_worker | default
    config.checkpoint_every_steps, config.progress, config.log_every_steps, config.deterministic, config.shrink
    config.latency_runtimes  where the shrunk model is timed against the original: "tf" (TensorFlow's runtime)
                      and/or "tflite" (the TFLite interpreter with XNNPACK, the CPU runtime a model ships to)

Learning-rate boundaries are in epochs so one config scales from a smoke run to the paper's; the paper's
iteration counts are converted in the config itself (e.g. 32K iterations at batch 128 on 50K images = 81.92 epochs).
"""
import ml_collections


def experiment(
    model,
    dataset,
    *,
    epochs,
    batch_size,
    learning_rate,
    optimizer="sgd",
    momentum=0.9,
    nesterov=False,
    weight_decay=0.0,
    schedule="constant",
    boundaries=(),
    decay=0.1,
    warmup_epochs=0.0,
    method="none",
    model_kwargs=None,
    method_kwargs=None,
):
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict({"name": model, "kwargs": dict(model_kwargs or {})})
    config.data = ml_collections.ConfigDict(
        {
            "name": dataset,
            "data_dir": ml_collections.FieldReference(None, field_type=str),
            "batch_size": batch_size,
            "train_examples": ml_collections.FieldReference(None, field_type=int),
            "augment": True,
            # Per-channel (x - mean) / std after scaling to [0, 1], e.g. CIFAR's: a number or a tuple, so typed
            # as any literal (--config.data.normalize_std='(0.25, 0.24, 0.26)' overrides it).
            "normalize_mean": ml_collections.FieldReference(None, field_type=object),
            "normalize_std": ml_collections.FieldReference(None, field_type=object),
        }
    )
    config.optimizer = ml_collections.ConfigDict(
        {
            "name": optimizer,
            "learning_rate": learning_rate,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
        }
    )
    config.schedule = ml_collections.ConfigDict(
        {"name": schedule, "boundaries": tuple(boundaries), "decay": decay, "warmup_epochs": warmup_epochs,
         "final_learning_rate": 0.0}
    )
    config.epochs = epochs
    config.method = ml_collections.ConfigDict({"name": method, **_typed_nones(method_kwargs or {})})
    config.mixed_precision = ml_collections.FieldReference(None, field_type=str)
    config.strategy = "auto"
    config.checkpoint_every_steps = ml_collections.FieldReference(500, field_type=int)  # plus every epoch end
    config.progress = True
    config.log_every_steps = 100
    config.deterministic = False  # tf.config.experimental.enable_op_determinism()
    config.shrink = False  # export the physically smaller model (sparse_keras.shrinking) and time it
    config.latency_runtimes = ("tf",)  # runtimes that time it (sparse_keras.benchmark.compare)
    return config


# Method keys whose None default still has a type, so that --config.method.<key>=... can set them; other
# None-valued keys take any Python literal.
OPTIONAL_METHOD_TYPES = {"guard": float, "finetune_optimizer": object, "finetune_schedule": object}


def _typed_nones(kwargs):
    """``kwargs`` with every None value a typed FieldReference (ml_collections cannot override a bare None)."""
    return {key: ml_collections.FieldReference(None, field_type=OPTIONAL_METHOD_TYPES.get(key, object))
            if value is None else value for key, value in kwargs.items()}


def iterations_to_epochs(iterations, batch_size, train_examples):
    """The paper's iteration count as (fractional) epochs of this config's data."""
    return iterations * batch_size / train_examples
