"""`sparse_keras.regularize` on models built elsewhere: the penalty reaches `model.losses`, training, saving.

The structured-sparsity paper's setup: every conv kernel of the base architecture is regularized, the final classifier is not.
"""

import re

import keras
import numpy as np
import pytest

import sparse_keras
from sparse_keras.regularizers import (
    FilterGroupLasso,
    KernelGroupLasso,
    NestedHalfRing,
    NestedRing,
    SumOfRegularizers,
)

RINGS = [NestedHalfRing, NestedRing]


# -- models ------------------------------------------------------------------------------------------
def small_cnn(conv_regularizer=None):
    """Kernel layers: conv3x3, dw (depthwise 5x5), pw (1x1), conv1x3, hidden (Dense), classifier (Dense)."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", kernel_regularizer=conv_regularizer, name="conv3x3")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(5, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(6, 1, name="pw")(x)
    x = keras.layers.Conv2D(6, (1, 3), padding="same", name="conv1x3")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, name="classifier")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


KERNEL_LAYERS = ["conv3x3", "dw", "pw", "conv1x3", "hidden", "classifier"]


def sequential_cnn():
    return keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(4, 3, name="s_conv1"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(4, 3, name="s_conv2"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="s_classifier"),
        ],
        name="sequential_cnn",
    )


def nested_cnn():
    backbone = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(4, 3, name="inner_conv1"),
            keras.layers.Conv2D(4, 5, name="inner_conv2"),
        ],
        name="backbone",
    )
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x), name="nested_cnn")


def all_layers(model):
    """Every layer, descending into nested models (written here, not taken from the library)."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def layer_named(model, name):
    return next(layer for layer in all_layers(model) if layer.name == name)


def to_float(x):
    return float(keras.ops.convert_to_numpy(x))


def penalty_of(layer):
    """The regularization terms a layer contributes (its only trainable weights are kernel and bias)."""
    return [to_float(v) for v in layer.losses]


def expected_penalty(layer, regularizer):
    """``regularizer`` applied to the layer's kernel; depthwise kernels are grouped per depthwise channel."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        regularizer = type(regularizer).from_config({**regularizer.get_config(), "layout": "depthwise"})
    return to_float(regularizer(layer.kernel))


def regularized_names(model):
    return sorted(layer.name for layer in all_layers(model) if layer.losses)


def random_data(n=8, shape=(12, 12, 3), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype("float32"), rng.integers(0, classes, size=(n,))


# -- which kernels, and what they get ----------------------------------------------------------------
@pytest.mark.parametrize("cls", [KernelGroupLasso, FilterGroupLasso])
def test_every_kernel_but_the_classifier_gets_one_term_equal_to_the_regularizer(cls):
    model = small_cnn()
    assert model.losses == []
    regularizer = cls(0.05, norm="scaled")
    assert sparse_keras.regularize(model, regularizer) is model
    assert len(model.losses) == len(KERNEL_LAYERS) - 1
    assert regularized_names(model) == sorted(set(KERNEL_LAYERS) - {"classifier"})
    for name in KERNEL_LAYERS[:-1]:
        layer = model.get_layer(name)
        np.testing.assert_allclose(penalty_of(layer), [expected_penalty(layer, regularizer)], rtol=1e-6)
    np.testing.assert_allclose(
        sorted(to_float(v) for v in model.losses),
        sorted(expected_penalty(model.get_layer(n), regularizer) for n in KERNEL_LAYERS[:-1]),
        rtol=1e-6,
    )
    assert model.get_layer("classifier").kernel.regularizer is None


@pytest.mark.parametrize("cls", RINGS)
def test_ring_regularizers_silently_skip_dense_and_non_square_kernels(cls):
    model = small_cnn()
    sparse_keras.regularize(model, cls(0.05))
    assert regularized_names(model) == ["conv3x3", "dw", "pw"]
    assert len(model.losses) == 3
    for name in ("conv3x3", "dw", "pw"):
        layer = model.get_layer(name)
        np.testing.assert_allclose(penalty_of(layer), [expected_penalty(layer, cls(0.05))], rtol=1e-6)


@pytest.mark.parametrize("cls", RINGS)
def test_ring_regularizers_reject_a_named_layer_they_cannot_group(cls):
    model = small_cnn()
    with pytest.raises(ValueError, match=re.escape("'conv1x3'") + ".*" + re.escape("(1, 3, 6, 6)")):
        sparse_keras.regularize(model, cls(0.05), where=["conv1x3"])
    with pytest.raises(ValueError, match="'hidden'"):
        sparse_keras.regularize(model, cls(0.05), where=["conv3x3", "hidden"])
    assert model.losses == [], "a failed selection must leave the model unchanged"


def test_the_classifier_is_regularized_only_when_asked_for():
    model = small_cnn()
    sparse_keras.regularize(model, KernelGroupLasso(0.05), where=["classifier"])
    assert regularized_names(model) == ["classifier"]

    model = small_cnn()
    sparse_keras.regularize(model, KernelGroupLasso(0.05), exclude_classifier=False)
    assert regularized_names(model) == sorted(KERNEL_LAYERS)

    model = small_cnn()
    sparse_keras.regularize(model, KernelGroupLasso(0.05), where=[keras.layers.Dense])
    assert regularized_names(model) == ["hidden"], "a class does not pull the classifier in"


def test_depthwise_kernels_get_a_depthwise_layout_copy():
    model = small_cnn()
    regularizer = NestedHalfRing(0.05, norm="normalized")
    sparse_keras.regularize(model, regularizer)
    dw = model.get_layer("dw")
    assert isinstance(dw.depthwise_regularizer, NestedHalfRing)
    assert dw.depthwise_regularizer.layout == "depthwise"
    assert dw.kernel.regularizer is dw.depthwise_regularizer
    assert dw.depthwise_regularizer.get_config() == {**regularizer.get_config(), "layout": "depthwise"}
    assert regularizer.layout == "conv", "the caller's regularizer is not modified"
    assert model.get_layer("conv3x3").kernel_regularizer.layout == "conv"
    # (5, 5, 8, 1) in depthwise layout: 8 kernels of 5 nested groups, not 1 kernel over 8 channels.
    conv_layout_value = to_float(NestedHalfRing(0.05, norm="normalized")(keras.ops.ones((5, 5, 1, 8))))
    np.testing.assert_allclose(
        to_float(dw.depthwise_regularizer(keras.ops.ones((5, 5, 8, 1)))), conv_layout_value, rtol=1e-6
    )


@pytest.mark.parametrize(
    "where, expected",
    [
        (lambda layer: layer.name.startswith("conv"), ["conv1x3", "conv3x3"]),
        (["pw", "dw"], ["dw", "pw"]),
        ("pw", ["pw"]),
        ([keras.layers.DepthwiseConv2D], ["dw"]),
        (keras.layers.Conv2D, ["conv1x3", "conv3x3", "pw"]),
        (["hidden", keras.layers.DepthwiseConv2D], ["dw", "hidden"]),
    ],
    ids=["callable", "names", "one-name", "class-list", "class", "mixed"],
)
def test_where_selects_by_callable_names_or_classes(where, expected):
    model = small_cnn()
    sparse_keras.regularize(model, KernelGroupLasso(0.05), where=where)
    assert regularized_names(model) == expected
    assert len(model.losses) == len(expected)


def test_bad_selections_raise_value_error_naming_the_problem():
    model = small_cnn()
    with pytest.raises(ValueError, match="'nope'"):
        sparse_keras.regularize(model, KernelGroupLasso(0.05), where=["nope"])
    with pytest.raises(ValueError, match="'bn'"):
        sparse_keras.regularize(model, KernelGroupLasso(0.05), where=["bn"])
    with pytest.raises(ValueError, match="42"):
        sparse_keras.regularize(model, KernelGroupLasso(0.05), where=["pw", 42])
    with pytest.raises(ValueError, match="regularizer"):
        sparse_keras.regularize(model, None)
    assert model.losses == []


def test_an_unbuilt_model_is_rejected():
    model = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Dense(2)], name="unbuilt")
    with pytest.raises(ValueError, match="'unbuilt'.*not built"):
        sparse_keras.regularize(model, KernelGroupLasso(0.05))


def test_regularizer_identifiers_are_looked_up():
    model = small_cnn()
    sparse_keras.regularize(model, {"name": "nested_ring", "strength": 0.05})
    assert regularized_names(model) == ["conv3x3", "dw", "pw"]
    assert isinstance(model.get_layer("pw").kernel_regularizer, NestedRing)


# -- existing regularizers ---------------------------------------------------------------------------
def test_keep_existing_adds_to_weight_decay_and_rerunning_replaces_our_own_term():
    l2 = keras.regularizers.L2(1e-2)
    model = small_cnn(conv_regularizer=l2)
    conv = model.get_layer("conv3x3")
    decay = to_float(l2(conv.kernel))
    sparse_keras.regularize(model, KernelGroupLasso(0.05))
    assert isinstance(conv.kernel_regularizer, SumOfRegularizers)
    np.testing.assert_allclose(
        penalty_of(conv), [decay + expected_penalty(conv, KernelGroupLasso(0.05))], rtol=1e-6
    )
    before = sorted(to_float(v) for v in model.losses)

    sparse_keras.regularize(model, KernelGroupLasso(0.05))  # idempotent
    np.testing.assert_allclose(sorted(to_float(v) for v in model.losses), before, rtol=1e-6)
    assert len(model.losses) == len(before) == 5

    sparse_keras.regularize(model, KernelGroupLasso(0.2))  # replaces, does not stack
    np.testing.assert_allclose(
        penalty_of(conv), [decay + expected_penalty(conv, KernelGroupLasso(0.2))], rtol=1e-6
    )
    pw = model.get_layer("pw")
    np.testing.assert_allclose(penalty_of(pw), [expected_penalty(pw, KernelGroupLasso(0.2))], rtol=1e-6)
    assert len(model.losses) == 5


def test_keep_existing_false_drops_weight_decay():
    model = small_cnn(conv_regularizer=keras.regularizers.L2(1e-2))
    sparse_keras.regularize(model, KernelGroupLasso(0.05), keep_existing=False)
    conv = model.get_layer("conv3x3")
    assert isinstance(conv.kernel_regularizer, KernelGroupLasso)
    np.testing.assert_allclose(penalty_of(conv), [expected_penalty(conv, KernelGroupLasso(0.05))], rtol=1e-6)


def test_a_different_group_lasso_is_added_next_to_the_first():
    # Kernel number and kernel size are learned together (Omega_1 + Omega_2).
    model = small_cnn()
    sparse_keras.regularize(model, KernelGroupLasso(0.05))
    sparse_keras.regularize(model, NestedHalfRing(0.03))
    conv, hidden = model.get_layer("conv3x3"), model.get_layer("hidden")
    both = expected_penalty(conv, KernelGroupLasso(0.05)) + expected_penalty(conv, NestedHalfRing(0.03))
    np.testing.assert_allclose(penalty_of(conv), [both], rtol=1e-6)
    only_kernel = expected_penalty(hidden, KernelGroupLasso(0.05))
    np.testing.assert_allclose(penalty_of(hidden), [only_kernel], rtol=1e-6)
    assert len(model.losses) == 5


def test_a_list_of_regularizers_is_summed_and_rings_drop_out_where_they_cannot_group():
    model = small_cnn()
    sparse_keras.regularize(model, [KernelGroupLasso(0.05), NestedRing(0.03)])
    conv, conv1x3 = model.get_layer("conv3x3"), model.get_layer("conv1x3")
    both = expected_penalty(conv, KernelGroupLasso(0.05)) + expected_penalty(conv, NestedRing(0.03))
    np.testing.assert_allclose(penalty_of(conv), [both], rtol=1e-6)
    only_kernel = expected_penalty(conv1x3, KernelGroupLasso(0.05))
    np.testing.assert_allclose(penalty_of(conv1x3), [only_kernel], rtol=1e-6)
    assert isinstance(conv1x3.kernel_regularizer, KernelGroupLasso)
    assert len(model.losses) == 5


# -- other model kinds -------------------------------------------------------------------------------
def test_sequential_model():
    model = sequential_cnn()
    regularizer = NestedRing(0.05, squared=True)
    sparse_keras.regularize(model, regularizer)
    assert regularized_names(model) == ["s_conv1", "s_conv2"]
    for name in ("s_conv1", "s_conv2"):
        layer = model.get_layer(name)
        np.testing.assert_allclose(penalty_of(layer), [expected_penalty(layer, regularizer)], rtol=1e-6)


def test_nested_sub_model_kernels_are_found_and_reach_the_outer_losses():
    model = nested_cnn()
    regularizer = KernelGroupLasso(0.05)
    sparse_keras.regularize(model, regularizer)
    assert regularized_names(model) == ["backbone", "inner_conv1", "inner_conv2"]  # backbone: its children's
    assert len(model.losses) == 2
    expected = [expected_penalty(layer_named(model, n), regularizer) for n in ("inner_conv1", "inner_conv2")]
    np.testing.assert_allclose(sorted(to_float(v) for v in model.losses), sorted(expected), rtol=1e-6)
    assert model.get_layer("head").kernel.regularizer is None

    model = nested_cnn()
    sparse_keras.regularize(model, regularizer, where=["inner_conv2"])
    assert len(model.losses) == 1
    assert layer_named(model, "inner_conv1").kernel.regularizer is None


# -- training ----------------------------------------------------------------------------------------
def compiled(model, lr=0.05, from_logits=True):
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
    )
    return model


def data_loss(model, x, y):
    return to_float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x, training=False)))


def test_fit_trains_with_the_penalty():
    model = compiled(sparse_keras.regularize(small_cnn(), KernelGroupLasso(0.5)))
    x, y = random_data()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    penalty = sum(to_float(v) for v in model.losses)
    assert penalty > 1.0
    evaluated = model.evaluate(x, y, batch_size=8, verbose=0)
    np.testing.assert_allclose(evaluated, data_loss(model, x, y) + penalty, rtol=1e-4)


def test_regularizing_a_model_that_was_already_trained_changes_what_fit_minimizes():
    # lr = 0 keeps the weights; Keras caches the traced train/test steps after their first call.
    model = compiled(small_cnn(), lr=0.0)
    x, y = random_data()
    plain_train = model.train_on_batch(x, y)
    plain_eval = model.evaluate(x, y, batch_size=8, verbose=0)
    sparse_keras.regularize(model, KernelGroupLasso(0.5))
    penalty = sum(to_float(v) for v in model.losses)
    assert penalty > 1.0
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=8, verbose=0), plain_eval + penalty, rtol=1e-4)
    np.testing.assert_allclose(model.train_on_batch(x, y), plain_train + penalty, rtol=1e-4)


_JAX_STEPS = {}  # one compiled step per (model, include_penalty), as a real loop would keep it


def custom_step(model, x, y, include_penalty=True):
    """One step of a hand-written loop: (data loss, penalty, gradients of their sum), backend by backend."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            data = loss_fn(y, model(x, training=True))
            penalty = keras.ops.sum(keras.ops.stack(model.losses)) if include_penalty else 0.0
            total = data + penalty
        grads = tape.gradient(total, model.trainable_variables)
        return to_float(data), to_float(penalty), [keras.ops.convert_to_numpy(g) for g in grads]
    if backend == "jax":
        import jax

        def total_loss(trainable, non_trainable, x, y):
            outputs, _, losses = model.stateless_call(
                trainable, non_trainable, x, training=True, return_losses=True
            )
            data = loss_fn(y, outputs)
            penalty = keras.ops.sum(keras.ops.stack(losses)) if include_penalty else 0.0
            return data + penalty, (data, penalty)

        key = (id(model), include_penalty)
        if key not in _JAX_STEPS:
            _JAX_STEPS[key] = jax.jit(jax.value_and_grad(total_loss, has_aux=True))
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        (_, (data, penalty)), grads = _JAX_STEPS[key](trainable, non_trainable, x, y)
        return to_float(data), to_float(penalty), [np.asarray(g) for g in grads]
    pytest.skip(f"no custom loop for backend {backend}")


def regularizer_gradient(regularizer, kernel):
    backend = keras.backend.backend()
    kernel = keras.ops.convert_to_numpy(kernel)
    if backend == "tensorflow":
        import tensorflow as tf

        kernel = tf.constant(kernel)
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            value = regularizer(kernel)
        return tape.gradient(value, kernel).numpy()
    import jax

    return np.asarray(jax.grad(regularizer)(jax.numpy.asarray(kernel)))


def test_a_custom_training_loop_sees_the_penalty_in_its_loss_and_gradients():
    regularizer = NestedHalfRing(0.5)
    model = sparse_keras.regularize(small_cnn(), regularizer)
    x, y = random_data()
    data, penalty, grads = custom_step(model, x, y)
    data_only, zero, data_grads = custom_step(model, x, y, include_penalty=False)
    assert zero == 0.0
    np.testing.assert_allclose(data, data_only, rtol=1e-5)
    expected = sum(expected_penalty(model.get_layer(n), regularizer) for n in ("conv3x3", "dw", "pw"))
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)
    # The penalty's share of each kernel's gradient is the regularizer's own gradient, and 0 elsewhere.
    for variable, g, g_data in zip(model.trainable_variables, grads, data_grads):
        owner = next(
            (layer for layer in all_layers(model) if getattr(layer, "kernel", None) is variable), None
        )
        if owner is not None and owner.name in ("conv3x3", "pw", "dw"):
            own = regularizer.for_layout("depthwise") if owner.name == "dw" else regularizer
            np.testing.assert_allclose(
                g - g_data, regularizer_gradient(own, variable), rtol=1e-3, atol=1e-6, err_msg=owner.name
            )
        else:
            np.testing.assert_allclose(g, g_data, rtol=1e-5, atol=1e-7, err_msg=variable.path)

    optimizer = keras.optimizers.SGD(0.05)
    for _ in range(5):
        _, _, grads = custom_step(model, x, y)
        optimizer.apply(grads, model.trainable_variables)
    _, later_penalty, _ = custom_step(model, x, y)
    assert later_penalty < 0.9 * penalty


# -- saving ------------------------------------------------------------------------------------------
def test_keras_save_and_load_keep_the_regularizers(tmp_path):
    model = small_cnn(conv_regularizer=keras.regularizers.L2(1e-2))
    sparse_keras.regularize(model, KernelGroupLasso(0.05, norm="normalized"))
    sparse_keras.regularize(model, NestedRing(0.02, squared=True))
    before = {name: penalty_of(model.get_layer(name)) for name in KERNEL_LAYERS}
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    for name in KERNEL_LAYERS:
        np.testing.assert_allclose(penalty_of(loaded.get_layer(name)), before[name], rtol=1e-6, err_msg=name)
        original = model.get_layer(name).kernel.regularizer
        restored = loaded.get_layer(name).kernel.regularizer
        assert type(restored) is type(original), name
        if original is not None:
            assert keras.regularizers.serialize(restored) == keras.regularizers.serialize(original), name
    dw_terms = loaded.get_layer("dw").depthwise_regularizer.regularizers
    assert [type(t) for t in dw_terms] == [KernelGroupLasso, NestedRing]
    assert all(t.layout == "depthwise" for t in dw_terms)
    np.testing.assert_allclose(
        sorted(to_float(v) for v in loaded.losses), sorted(to_float(v) for v in model.losses), rtol=1e-6
    )


# -- models nobody here wrote ------------------------------------------------------------------------
def kernel_layers(model, classes):
    return [layer for layer in all_layers(model) if type(layer) in classes]


@pytest.fixture(scope="module")
def resnet50():
    return keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)


@pytest.fixture(scope="module")
def mobilenet_v2():
    return keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=10, alpha=0.35)


@pytest.mark.slow
def test_resnet50_every_conv_gets_the_ring_penalty_and_trains(resnet50):
    model = resnet50
    convs = kernel_layers(model, (keras.layers.Conv2D,))
    assert len(convs) == 53 and len(model.losses) == 0
    regularizer = NestedRing(1e-4, norm="normalized")
    sparse_keras.regularize(model, regularizer)  # 7x7, 3x3 and 1x1 kernels are all square
    assert len(model.losses) == 53
    for layer in convs:
        np.testing.assert_allclose(penalty_of(layer), [expected_penalty(layer, regularizer)], rtol=1e-5)
    assert model.get_layer("predictions").kernel.regularizer is None
    x, y = random_data(n=2, shape=(64, 64, 3), classes=10)
    loss = compiled(model, lr=1e-3, from_logits=False).train_on_batch(x, y)
    assert np.isfinite(loss)


@pytest.mark.slow
def test_mobilenet_v2_depthwise_kernels_and_a_save_load_round_trip(mobilenet_v2, tmp_path):
    model = mobilenet_v2
    convs = kernel_layers(model, (keras.layers.Conv2D,))
    depthwise = kernel_layers(model, (keras.layers.DepthwiseConv2D,))
    assert depthwise and len(model.losses) == 0
    regularizer = NestedHalfRing(1e-4)
    sparse_keras.regularize(model, regularizer)
    assert len(model.losses) == len(convs) + len(depthwise)
    for layer in depthwise:
        assert layer.depthwise_regularizer.layout == "depthwise"
        np.testing.assert_allclose(penalty_of(layer), [expected_penalty(layer, regularizer)], rtol=1e-5)
    for layer in convs:
        np.testing.assert_allclose(penalty_of(layer), [expected_penalty(layer, regularizer)], rtol=1e-5)
    assert model.get_layer("predictions").kernel.regularizer is None

    x, y = random_data(n=2, shape=(64, 64, 3), classes=10)
    assert np.isfinite(compiled(model, lr=1e-3, from_logits=False).train_on_batch(x, y))

    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        sorted(to_float(v) for v in loaded.losses), sorted(to_float(v) for v in model.losses), rtol=1e-6
    )
    loaded_depthwise = kernel_layers(loaded, (keras.layers.DepthwiseConv2D,))
    assert len(loaded_depthwise) == len(depthwise)
    assert all(layer.depthwise_regularizer.layout == "depthwise" for layer in loaded_depthwise)
