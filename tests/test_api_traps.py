"""The traps a new user hit on the first hour: layer objects, named regularizers, ADMM's lr * rho bound,
explicit layer signatures, shrink's silence on layers it keeps whole, CSC inference tracing."""

import inspect
import warnings

import keras
import numpy as np
import pytest

import sparse_keras as sk
from sparse_keras import admm
from sparse_keras.layers import CSCConv2D, LRSDConv2D, LRSDDense


def small_cnn(compile_with=None):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="cls")(h))
    if compile_with is not None:
        model.compile(compile_with, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


# -- layer objects wherever layers are named ------------------------------------------------------------
def test_regularize_takes_layer_objects():
    model = small_cnn()
    conv = model.get_layer("c2")
    sk.regularize(model, sk.KernelGroupLasso(1e-3), where=[conv])
    assert isinstance(conv.kernel.regularizer, sk.KernelGroupLasso)
    assert model.get_layer("c1").kernel.regularizer is None
    sk.regularize(model, sk.KernelGroupLasso(1e-3), where=model.get_layer("c1"))  # a single layer too
    assert isinstance(model.get_layer("c1").kernel.regularizer, sk.KernelGroupLasso)


def test_a_layer_of_another_model_is_named_in_the_error():
    model, other = small_cnn(), keras.layers.Conv2D(2, 3, name="stranger")
    with pytest.raises(ValueError, match="stranger"):
        sk.regularize(model, sk.KernelGroupLasso(1e-3), where=[other])
    with pytest.raises(ValueError, match=r"where must hold layers, layer names or layer classes; got where=\[3\]"):
        sk.regularize(model, sk.KernelGroupLasso(1e-3), where=[3])


def test_admm_takes_layer_objects():
    model = small_cnn()
    trainer = admm.ADMM("l0", mu=0.1, rho=1.0, layers=[model.get_layer("c1")]).attach(model)
    assert [t.slot.layer.name for t in trainer.targets] == ["c1"]


def test_prune_threshold_takes_layer_objects():
    model = small_cnn()
    conv = model.get_layer("c1")
    conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
    masks = sk.prune.threshold(model, tau=1e-3, scheme="kernel", where=[conv])
    assert set(masks) == {conv.kernel.path}


# -- named regularizers -------------------------------------------------------------------------------
def test_a_named_group_lasso_gets_the_documented_default_strength():
    model = small_cnn()
    sk.regularize(model, "kernel_group_lasso")
    reg = model.get_layer("c1").kernel.regularizer
    assert isinstance(reg, sk.KernelGroupLasso) and reg.strength == sk.regularizers.DEFAULT_STRENGTH == 1e-4
    assert sk.regularizers.get("nested_ring", strength=0.5).strength == 0.5


def test_bad_arguments_of_a_named_regularizer_name_them():
    with pytest.raises(ValueError, match=r"Bad arguments .*'strenght'.* for regularizer 'nested_half_ring'"):
        sk.regularizers.get("nested_half_ring", strenght=1e-3)


# -- ADMM's stability bound ---------------------------------------------------------------------------
def test_admm_refuses_sgd_beyond_the_lr_rho_bound_when_it_attaches():
    model = small_cnn(keras.optimizers.SGD(1.0))
    trainer = admm.ADMM("l0", mu=0.1, rho=100.0)
    x, y = np.zeros((4, 8, 8, 1), "float32"), np.zeros(4, "int32")
    message = r"optimizer.learning_rate \* rho = 1 \* 100 = 100 must stay below 2 \(1 \+ optimizer.momentum\) = 2"
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[trainer])
    assert not trainer.attached


@pytest.mark.parametrize(
    "optimizer, rho",
    [
        (keras.optimizers.SGD(0.01, momentum=0.9), 100.0),  # 1 < 3.8
        (keras.optimizers.Adam(1.0), 100.0),  # adaptive: no such bound
    ],
)
def test_admm_accepts_stable_or_adaptive_optimizers(optimizer, rho):
    admm.ADMM("l0", mu=0.1, rho=rho).attach(small_cnn(optimizer))


def test_stability_bound_heavy_ball_and_nesterov():
    assert admm.stability_bound(0.9) == pytest.approx(3.8)
    assert admm.stability_bound(0.9, nesterov=True) == pytest.approx(3.8 / 2.8)
    admm.check_stability(0.03, 100.0, 0.9)
    with pytest.raises(ValueError, match=r"config.lr \* config.rho = 0.04 \* 100 = 4"):
        admm.check_stability(0.04, 100.0, 0.9, names=("config.lr", "config.rho", "config.momentum"))


def test_sgd_beyond_the_bound_really_diverges_on_the_w_step():
    # The rule is not a convention: plain gradient descent on rho/2 w^2 multiplies w by (1 - lr rho).
    for lr_rho, grows in ((1.9, False), (2.1, True)):
        w = 1.0
        for _ in range(50):
            w -= lr_rho * w
        assert (abs(w) > 1) == grows


# -- explicit signatures ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [LRSDConv2D, LRSDDense])
def test_lrsd_layers_show_their_documented_arguments(cls):
    parameters = inspect.signature(cls.__init__).parameters
    for name in ("rank", "sparse_only", "batch_norm", "use_bias", "activation", "sparse_l1", "sparse_regularizer",
                 "kernel_initializer", "bias_initializer", "batch_norm_gamma"):
        assert name in parameters, name
    layer = cls(4, 3, sparse_l1=1e-3, activation="relu") if cls is LRSDConv2D else cls(4, sparse_l1=1e-3, activation="relu")
    assert layer.sparse_l1 == 1e-3 and layer.activation is keras.activations.relu
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()


def test_lrsd_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"filters must be a positive int, got filters=0"):
        LRSDConv2D(0, 3)
    with pytest.raises(ValueError, match=r"units must be a positive int, got units=-2"):
        LRSDDense(-2)


# -- shrink says what it keeps whole ------------------------------------------------------------------
def test_shrink_warns_naming_layers_it_keeps_whole():
    inputs = keras.Input((16, 3))
    h = keras.layers.Conv1D(4, 3, padding="same", name="conv1d")(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    with pytest.warns(UserWarning, match=r"keeps 1 layer\(s\) of model .* whole.*conv1d \(Conv1D\)"):
        small = sk.shrink(model)
    x = np.random.default_rng(0).normal(size=(2, 16, 3)).astype("float32")
    np.testing.assert_allclose(small.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-5)


def test_shrink_is_silent_on_layers_it_handles():
    model = small_cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sk.shrink(model, mixed_sizes="masked")


# -- CSC inference is traced once ---------------------------------------------------------------------
@pytest.mark.tf_only
def test_csc_predict_traces_once_per_input_signature():
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.GlobalAveragePooling2D()(CSCConv2D(6, 3, name="csc")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    x = np.random.default_rng(0).random((16, 12, 12, 3)).astype("float32")
    for _ in range(5):
        model.predict(x, batch_size=8, verbose=0)
    # Inference reads the stored step size: no power iteration, no Python state that changes per call.
    assert model.predict_function.experimental_get_tracing_count() == 1
