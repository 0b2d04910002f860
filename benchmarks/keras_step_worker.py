"""Our models (``sparse_keras.models.get``) as a ``benchmarks.step_server`` worker on the current Keras backend.

Each row is built with seed 0, compiled as a user would (SGD momentum 0.9, sparse cross-entropy on logits,
``jit_compile`` as chosen below) and timed through the very step ``model.fit`` / ``model.predict`` run:

* TensorFlow: ``train_on_batch`` / ``predict_on_batch`` on tensors made once (the compiled ``tf.function``
  step; on a CPU it returns when the step has run).
* JAX: the compiled ``model.train_function`` / ``predict_function`` called with the state threaded from step
  to step, as ``fit`` does (``train_on_batch`` would copy every variable back into the model after each
  step, which ``fit`` does not); ``jax.block_until_ready`` closes a window and ``drop`` writes the state back.

``--jit-compile`` is ``auto`` by default: Keras's own choice, i.e. XLA on JAX always and on TensorFlow only
with a GPU (on a 2-core CPU, XLA made our TF ResNet-20 training slower in every round; benchmarks/RESULTS.md).

  KERAS_BACKEND=jax python -m benchmarks.keras_step_worker --batch 64 --warmup 2   # then JSON lines on stdin
"""

import argparse

import keras
import numpy as np

from benchmarks import step_server
from sparse_keras import models

JIT_CHOICES = {"auto": "auto", "true": True, "false": False}
# The official SDNet18_all under its released CIFAR config has no shortcuts (11,000,138 trainable parameters,
# docs/csc.md); ours defaults to shortcuts, so the row builds our same-architecture variant.
ROW_OPTIONS = {"sdnet18_all": {"shortcut": False}}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.keras_step_worker",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="training and inference batch")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per phase after building")
    parser.add_argument("--jit-compile", default="auto", choices=list(JIT_CHOICES))
    return parser.parse_args(argv)


def prepare(name, batch, jit_compile="auto", input_shape=(32, 32, 3)):
    """A ``step_server.Prepared`` of ``models.get(name)`` on one batch of noise."""
    keras.utils.set_random_seed(0)
    model = models.get(name, num_classes=10, input_shape=input_shape, **ROW_OPTIONS.get(name, {}))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *input_shape)).astype("float32")
    y = rng.integers(0, 10, size=(batch,)).astype("int32")
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    if keras.backend.backend() == "jax":
        return _jax_steps(model, x, y, params)
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    return step_server.Prepared(params, {"train": lambda: model.train_on_batch(x, y),
                                         "infer": lambda: model.predict_on_batch(x)})


def _jax_steps(model, x, y, params):
    import jax

    model.train_on_batch(x, y)  # builds and compiles train_function (and the optimizer's variables)
    model.predict_on_batch(x)
    x, y = jax.device_put(x), jax.device_put(y)
    train_groups = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
                    model.metrics_variables)
    live = {"train": tuple([v.value for v in group] for group in train_groups), "outputs": None}

    def train():
        _, live["train"] = model.train_function(live["train"], iter([(x, y, None)]))

    def infer():
        # Both compiled steps donate their input state: inference takes the weights training left and
        # hands back the live ones, which the next training step continues from.
        trainable, non_trainable, optimizer, metrics = live["train"]
        live["outputs"], (trainable, non_trainable) = model.predict_function((trainable, non_trainable),
                                                                             iter([(x,)]))
        live["train"] = (trainable, non_trainable, optimizer, metrics)

    def release():
        for group, values in zip(train_groups, live["train"]):
            for variable, value in zip(group, values):
                variable.assign(value)

    return step_server.Prepared(params, {"train": train, "infer": infer},
                                {"train": lambda: jax.block_until_ready(live["train"]),
                                 "infer": lambda: jax.block_until_ready(live["outputs"])}, release)


def main(argv=None):
    args = parse_args(argv)
    step_server.serve(lambda name: prepare(name, args.batch, JIT_CHOICES[args.jit_compile]), warmup=args.warmup)


if __name__ == "__main__":
    main()
