"""Helpers for tests of code that must behave alike on every Keras backend.

:func:`run_layer_test` is the contract every layer of the library is held to, in the spirit of Keras'
own ``testing.TestCase.run_layer_test``: build, call eagerly and compiled, config and ``.keras`` round
trips, one training step. It uses the running backend only, so a suite run once per backend checks each.
"""

import json
import os
import tempfile
import warnings

import keras
import numpy as np


def to_numpy(x):
    """A backend tensor or variable as a numpy array."""
    return keras.ops.convert_to_numpy(x)


def gradient(fn, x):
    """``d sum(fn(x)) / dx`` at ``x`` by the running backend's own autodiff, as a numpy array.

    TensorFlow and JAX are imported here, on first use, so that importing this module needs neither.
    """
    x = np.asarray(x, dtype="float32")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = keras.ops.sum(fn(x))
        return tape.gradient(y, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: keras.ops.sum(fn(v)))(jax.numpy.asarray(x)))
    raise ValueError(f"gradient() supports the tensorflow and jax backends, not {backend!r}")


def run_layer_test(
    layer_cls,
    init_kwargs=None,
    input_shape=None,
    input_data=None,
    call_kwargs=None,
    expected_output_shape=None,
    expected_output_dtype=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_num_losses=None,
    supports_masking=None,
    run_training_check=True,
    expected_updated_variables=(),
    atol=1e-5,
    rtol=1e-5,
):
    """Checks that ``layer_cls(**init_kwargs)`` keeps the contract of a serializable Keras layer.

    In order, each failure raising an ``AssertionError`` that names the layer and the check:

    1. *serialization*: the class is registered (``keras.saving.register_keras_serializable``), its
       ``get_config`` holds every argument of ``init_kwargs``, ``from_config`` and a JSON
       ``serialize``/``deserialize`` give back the same config, ``supports_masking`` is as expected;
    2. *build*: ``build(input_shape)`` builds it with the expected weight counts;
    3. *eager call*: finite output of the expected shape and dtype, the expected number of losses;
    4. *symbolic call*: in a functional model, the same output shape and dtype and weight counts as eager;
    5. *compiled call*: ``model.predict`` (a traced, compiled function) equals the eager call;
    6. *config round trip*: ``from_config`` with the weights copied gives the same outputs;
    7. *.keras round trip*: ``keras.saving.save_model`` then ``load_model`` gives the same class,
       config, weights and outputs;
    8. *training* (``run_training_check``): one compiled ``model.fit`` step on a mean-square loss keeps
       loss and weights finite and moves a trainable weight (if any); every non-trainable variable in
       ``expected_updated_variables`` (matched by name or path suffix) must change too. On JAX that is
       the check that state assigned in ``call`` is part of the model's state, since ``fit`` freezes
       variables it does not track into the compiled step.

    Args:
      layer_cls: the layer class.
      init_kwargs: constructor arguments.
      input_shape: shape to build and call with, batch included (``None`` dims become 2 in the data);
        or ``input_data``: a float array to call on.
      call_kwargs: extra arguments of every call (the functional model fixes them at trace time).
      expected_output_shape: output shape, ``None`` for any size in that dimension.
      expected_output_dtype: e.g. ``"float32"``.
      expected_num_trainable_weights, expected_num_non_trainable_weights: weight counts once built.
      expected_num_losses: ``len(layer.losses)`` after a call.
      supports_masking: the expected ``layer.supports_masking``.
      run_training_check: run check 8.
      expected_updated_variables: names of non-trainable variables one training step must change.
      atol, rtol: tolerances of every comparison of outputs.
    """
    if (input_shape is None) == (input_data is None):
        raise ValueError("run_layer_test needs exactly one of input_shape and input_data")
    check = _Checker(layer_cls)
    init_kwargs, call_kwargs = dict(init_kwargs or {}), dict(call_kwargs or {})
    x = _make_input(input_shape) if input_data is None else np.asarray(input_data)
    build_shape = tuple(x.shape) if input_shape is None else tuple(input_shape)
    expected = dict(shape=expected_output_shape, dtype=expected_output_dtype, losses=expected_num_losses,
                    counts=(expected_num_trainable_weights, expected_num_non_trainable_weights))
    _check_serialization(check, layer_cls(**init_kwargs), init_kwargs, supports_masking)
    counts = _check_build_and_eager_call(check, layer_cls(**init_kwargs), build_shape, x, call_kwargs, expected)
    model = _check_symbolic_and_compiled_call(check, layer_cls(**init_kwargs), build_shape, x, call_kwargs,
                                              dict(expected, counts=counts), (atol, rtol))
    reference = to_numpy(model(x))
    _check_from_config(check, model.layers[-1], build_shape, x, call_kwargs, reference, (atol, rtol))
    _check_keras_file(check, model, x, reference, (atol, rtol))
    if run_training_check:
        _check_training(check, model, x, reference.shape, expected_updated_variables)


class _Checker:
    """Raises ``AssertionError`` naming the layer class and the failing check."""

    def __init__(self, layer_cls):
        self.layer_name = layer_cls.__name__

    def __call__(self, condition, check, detail):
        if not condition:
            raise AssertionError(f"{self.layer_name}: {check} check failed: {detail}")

    def close(self, actual, desired, check, what, tolerances):
        atol, rtol = tolerances
        if actual.shape != desired.shape or not np.allclose(actual, desired, atol=atol, rtol=rtol):
            error = np.max(np.abs(actual - desired)) if actual.shape == desired.shape else "n/a"
            self(False, check, f"outputs differ, {what} (shapes {actual.shape} vs {desired.shape}, "
                               f"max |diff| {error}, atol={atol}, rtol={rtol})")


def _make_input(input_shape):
    shape = tuple(2 if size is None else size for size in input_shape)
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def _config_json(config):
    """A config as canonical JSON, so that a tuple and the list it becomes in a file compare equal."""
    return json.dumps(config, sort_keys=True, default=repr)


def _check_serialization(check, layer, init_kwargs, supports_masking):
    cls = type(layer)
    registered = keras.saving.get_registered_object(keras.saving.get_registered_name(cls))
    check(registered is cls, "serialization",
          f"{cls.__name__} is not registered for Keras serialization (decorate it with "
          "keras.saving.register_keras_serializable), so a saved model cannot find it")
    config = layer.get_config()
    missing = sorted(set(init_kwargs) - set(config))
    check(not missing, "serialization", f"get_config() drops the constructor argument(s) {missing}")
    revived = cls.from_config(config).get_config()
    check(_config_json(revived) == _config_json(config), "serialization",
          f"from_config(get_config()) gives another config:\n{revived}\ninstead of\n{config}")
    text = json.dumps(keras.saving.serialize_keras_object(layer))
    copy = keras.saving.deserialize_keras_object(json.loads(text))
    check(type(copy) is cls and _config_json(copy.get_config()) == _config_json(config), "serialization",
          f"serialize/deserialize through JSON gives {type(copy).__name__} with config {copy.get_config()}")
    if supports_masking is not None:
        check(layer.supports_masking == supports_masking, "masking",
              f"supports_masking is {layer.supports_masking}, expected {supports_masking}")


def _weight_counts(layer):
    return len(layer.trainable_weights), len(layer.non_trainable_weights)


def _check_counts(check, layer, expected_counts, where):
    counts = _weight_counts(layer)
    for kind, actual, wanted in zip(("trainable", "non-trainable"), counts, expected_counts):
        check(wanted is None or actual == wanted, "weight count",
              f"{actual} {kind} weights {where}, expected {wanted}")
    return counts


def _shape_matches(expected, actual):
    expected, actual = tuple(expected), tuple(actual)
    return len(expected) == len(actual) and all(e is None or a is None or e == a for e, a in zip(expected, actual))


def _check_output(check, output, expected, where):
    if expected["shape"] is not None:
        check(_shape_matches(expected["shape"], output.shape), "output shape",
              f"{where} output has shape {tuple(output.shape)}, expected {tuple(expected['shape'])}")
    dtype = keras.backend.standardize_dtype(output.dtype)
    check(expected["dtype"] is None or dtype == expected["dtype"], "output dtype",
          f"{where} output has dtype {dtype}, expected {expected['dtype']}")


def _check_build_and_eager_call(check, layer, build_shape, x, call_kwargs, expected):
    layer.build(build_shape)
    check(layer.built, "build", f"build({build_shape}) left the layer unbuilt")
    counts = _check_counts(check, layer, expected["counts"], f"after build({build_shape})")
    output = layer(x, **call_kwargs)
    _check_output(check, output, expected, "eager")
    check(np.all(np.isfinite(to_numpy(output))), "eager call", "the output is not finite")
    _check_counts(check, layer, counts, "after the first call (weights must all be made in build)")
    if expected["losses"] is not None:
        check(len(layer.losses) == expected["losses"], "losses",
              f"{len(layer.losses)} losses after a call, expected {expected['losses']}")
    return counts


def _check_symbolic_and_compiled_call(check, layer, build_shape, x, call_kwargs, expected, tolerances):
    inputs = keras.Input(batch_shape=build_shape, dtype=str(x.dtype))
    symbolic = layer(inputs, **call_kwargs)
    _check_output(check, symbolic, expected, "symbolic")
    _check_counts(check, layer, expected["counts"], "in a functional model")
    model = keras.Model(inputs, symbolic)
    eager = model(x)
    check(_shape_matches(symbolic.shape, eager.shape), "output shape",
          f"compute_output_shape gives {tuple(symbolic.shape)} but the call returns {tuple(eager.shape)}")
    symbolic_dtype, eager_dtype = (keras.backend.standardize_dtype(t.dtype) for t in (symbolic, eager))
    check(symbolic_dtype == eager_dtype, "output dtype",
          f"the symbolic output is {symbolic_dtype} but the call returns {eager_dtype}")
    compiled = model.predict(x, batch_size=len(x), verbose=0)
    check.close(np.asarray(compiled), to_numpy(eager), "compiled call", "model.predict vs eager", tolerances)
    return model


def _check_from_config(check, layer, build_shape, x, call_kwargs, reference, tolerances):
    clone = type(layer).from_config(layer.get_config())
    clone.build(build_shape)
    try:
        clone.set_weights(layer.get_weights())
    except ValueError as error:
        check(False, "config round trip", f"from_config builds other weights than the original: {error}")
    check.close(to_numpy(clone(x, **call_kwargs)), reference, "config round trip",
                "from_config with the weights copied vs the original", tolerances)


def _check_keras_file(check, model, x, reference, tolerances):
    layer = model.layers[-1]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer_test.keras")
        keras.saving.save_model(model, path)
        try:
            loaded = keras.saving.load_model(path)
        except Exception as error:  # noqa: BLE001 - any failure to load is the finding, reported as such
            check(False, ".keras round trip", f"load_model raised {type(error).__name__}: {error}")
    twin = loaded.get_layer(layer.name)
    check(type(twin) is type(layer), ".keras round trip", f"loaded as {type(twin).__name__}")
    check(_config_json(twin.get_config()) == _config_json(layer.get_config()), ".keras round trip",
          f"loaded config {twin.get_config()} differs from {layer.get_config()}")
    check(len(twin.weights) == len(layer.weights), ".keras round trip",
          f"loaded with {len(twin.weights)} weights instead of {len(layer.weights)}")
    for saved, restored in zip(layer.weights, twin.weights):
        check(np.array_equal(to_numpy(saved), to_numpy(restored)), ".keras round trip",
              f"weight {saved.path} does not come back as saved")
    check.close(to_numpy(loaded(x)), reference, ".keras round trip", "loaded model vs original", tolerances)


def _check_training(check, model, x, output_shape, updated_names):
    layer = model.layers[-1]
    watched = _watched_variables(layer, updated_names)
    before = [to_numpy(v) for v in layer.trainable_weights + watched]
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.MeanSquaredError())
    with warnings.catch_warnings():  # a weightless layer (an activation) is still run through one step
        warnings.filterwarnings("ignore", "The model does not have any trainable weights")
        history = model.fit(x, np.zeros(output_shape, "float32"), batch_size=len(x), epochs=1, shuffle=False,
                            verbose=0)
    loss = history.history["loss"][-1]
    check(np.isfinite(loss), "training", f"one fit step gives the loss {loss}")
    for variable in model.weights:
        check(np.all(np.isfinite(to_numpy(variable))), "training", f"{variable.path} is not finite after fit")
    after = [to_numpy(v) for v in layer.trainable_weights + watched]
    trainable = len(layer.trainable_weights)
    moved = [not np.array_equal(b, a) for b, a in zip(before, after)]
    check(trainable == 0 or any(moved[:trainable]), "training", "fit changed none of the trainable weights")
    for variable, changed in zip(watched, moved[trainable:]):
        check(changed, "training state",
              f"model.fit left {variable.path} unchanged (on JAX, state the model does not track is frozen "
              "into the compiled step)")


def _watched_variables(layer, names):
    watched = []
    for name in names:
        found = [v for v in layer.non_trainable_variables if v.name == name or v.path.endswith("/" + name)]
        if not found:
            paths = [v.path for v in layer.non_trainable_variables]
            raise ValueError(f"expected_updated_variables: no non-trainable variable {name!r} in {paths}")
        watched += found
    return watched
