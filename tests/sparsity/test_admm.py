"""ADMM sparsity training (Kiaee et al. 2016) through model.fit, on whichever backend the suite runs."""

import keras
import numpy as np
import pytest

from sparse_keras.sparsity import masking
from sparse_keras.admm import ADMM, block_axes
from sparse_keras.sparsity.schedules import MuPath


def np_(x):
    return np.array(keras.ops.convert_to_numpy(x))


class HalfSumOfSquares(keras.losses.Loss):
    """Summed over the batch (not averaged): the objective is exactly 1/2 ||XW - Y||^2."""

    def __init__(self):
        super().__init__(reduction="sum")

    def call(self, y_true, y_pred):
        return 0.5 * keras.ops.sum(keras.ops.square(y_true - y_pred), axis=-1)


def least_squares_problem(n=64, d=8, k=6, seed=0):
    """X with orthonormal columns, so the group-lasso optimum is soft(X^T Y) column by column."""
    rng = np.random.default_rng(seed)
    x, _ = np.linalg.qr(rng.normal(size=(n, d)))
    w_true = rng.normal(size=(d, k)) * np.array([3.0, 0.2, 2.0, 0.1, 1.5, 0.3])
    y = x @ w_true + 0.01 * rng.normal(size=(n, k))
    return x.astype("float32"), y.astype("float32")


def linear_model(d, k, lr):
    inputs = keras.Input((d,))
    model = keras.Model(inputs, keras.layers.Dense(k, use_bias=False, name="w")(inputs))
    model.compile(keras.optimizers.SGD(lr), loss=HalfSumOfSquares())
    return model


def test_admm_l1_reaches_the_group_soft_threshold_optimum_of_a_convex_problem():
    x, y = least_squares_problem()
    mu, rho = 0.8, 1.0
    model = linear_model(8, 6, lr=0.2)
    admm = ADMM("l1", mu=mu, rho=rho, block="filter", layers=["w"], update_every=10, guard=None)
    model.fit(x, y, batch_size=len(x), epochs=600, shuffle=False, verbose=0, callbacks=[admm])

    xty = x.T.astype("float64") @ y
    norms = np.linalg.norm(xty, axis=0)
    optimum = xty * np.maximum(1 - mu / norms, 0)  # Dense block = one output column
    f = np_(admm.targets[0].f)
    np.testing.assert_allclose(f, optimum, atol=2e-3)
    assert np.all(f[:, norms <= mu] == 0)  # the dropped columns are exactly zero
    assert (norms <= mu).sum() >= 1 and (norms > mu).sum() >= 1  # the problem tests both sides


def test_admm_l0_keeps_exactly_the_columns_above_the_hard_threshold():
    x, y = least_squares_problem(seed=1)
    mu, rho = 0.5, 1.0  # b = sqrt(2 mu / rho) = 1
    model = linear_model(8, 6, lr=0.2)
    admm = ADMM("l0", mu=mu, rho=rho, layers=["w"], update_every=10, guard=None)
    model.fit(x, y, batch_size=len(x), epochs=300, shuffle=False, verbose=0, callbacks=[admm])
    xty = x.T @ y
    keep = np.linalg.norm(xty, axis=0) > 1.0
    f = np_(admm.targets[0].f)
    np.testing.assert_array_equal(np.linalg.norm(f, axis=0) > 0, keep)
    np.testing.assert_allclose(f[:, keep], xty[:, keep], atol=5e-3)  # kept blocks are not shrunk


def small_cnn():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="cls")(h))
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images[..., None] / 16.0).astype("float32")[:512], data.target[:512]


def filter_norms(kernel):
    return np.sqrt((np_(kernel) ** 2).sum(axis=(0, 1)))


def test_finalize_projects_and_masks_survive_fine_tuning():
    x, y = digits()
    model = small_cnn()
    admm = ADMM("l0", mu=0.5, rho=10.0, update_every=1)
    model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[admm])
    masks = admm.finalize()
    assert {"c1/kernel", "c2/kernel"} <= set(masks) <= {"c1/kernel", "c2/kernel", "c1/bias", "c2/bias"}
    zero = {name: filter_norms(model.get_layer(name).kernel) == 0 for name in ("c1", "c2")}
    assert zero["c2"].any() and not zero["c2"].all()
    before = {name: np_(model.get_layer(name).kernel) for name in ("c1", "c2")}

    model.fit(x, y, epochs=2, batch_size=64, verbose=0)  # masked fine-tuning, penalty gone
    for name in ("c1", "c2"):
        after = np_(model.get_layer(name).kernel)
        assert np.all(after[:, :, zero[name]] == 0)  # pruned filters stay exactly zero
        assert not np.allclose(after[:, :, ~zero[name]], before[name][:, :, ~zero[name]])  # others train
    assert all(r is None for r in (model.get_layer("c1").kernel.regularizer, model.get_layer("c2").kernel.regularizer))


def test_f_and_gamma_are_live_model_state_without_retracing_and_never_saved(tmp_path):
    """On JAX a compiled step freezes whatever the model does not track: F and Gamma must be model state."""
    x, y = digits()
    model = small_cnn()
    admm = ADMM("l0", mu=0.5, rho=10.0, update_every=1)
    steps = []

    class RecordStep(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            steps.append(self.model.train_function)
            if epoch == 1:  # mid-ADMM: the W-step's U = F - Gamma/rho now differs from the first epoch's
                state_paths = [v.path for v in self.model.non_trainable_variables]
                assert "c1/admm_kernel/f" in state_paths and "c2/admm_kernel/gamma" in state_paths
                self.model.save(tmp_path / "mid_admm.keras")

    model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[admm, RecordStep()])
    assert steps[0] is steps[1] is steps[2]  # three F-steps, one compiled train step
    # The penalty the step minimises uses the updated F: W follows F towards its zero filters.
    f = np_(admm.targets[1].f)
    zero = filter_norms(f) == 0
    assert zero.any()
    assert filter_norms(model.get_layer("c2").kernel)[zero].max() < filter_norms(f)[~zero].min()

    fresh = small_cnn()
    fresh.load_weights(tmp_path / "mid_admm.keras")  # a plain model file: no ADMM variables inside
    assert len(fresh.weights) == len(keras.models.load_model(tmp_path / "mid_admm.keras", compile=False).weights)
    admm.finalize()
    assert not any("admm" in v.path for v in model.variables)  # detached with the penalty


def test_dead_output_kernels_take_their_bias_with_them_so_the_unit_is_gone():
    x, y = digits()
    model = small_cnn()
    # Whole output kernels as blocks, and a mu whose threshold every layer's kernels fall under, guarded:
    # each layer keeps only the kernels above its mean norm.
    admm = ADMM("l0", mu=1e4, rho=10.0, block="kernel", update_every=1, guard=0.5)
    model.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[admm])
    masks = admm.finalize()
    kernel = np_(model.get_layer("c2").kernel)
    dead = ~(kernel.reshape(-1, kernel.shape[-1]) != 0).any(axis=0)
    assert dead.any() and not dead.all()
    np.testing.assert_array_equal(masks["c2/bias"], (~dead).astype("float32"))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert np.all(np_(model.get_layer("c2").bias)[dead] == 0)  # the constant channel stays gone
    assert np.all(np_(model.get_layer("c2").bias)[~dead] != 0)

    keep = ADMM("l0", mu=1e4, rho=10.0, block="kernel", guard=0.5, prune_bias=False)
    fresh = small_cnn()
    fresh.fit(x, y, epochs=1, batch_size=64, verbose=0, callbacks=[keep])
    assert not any(path.endswith("bias") for path in keep.finalize())


def test_masks_can_be_lifted():
    model = small_cnn()
    mask = np.zeros((3, 3, 1, 8), "float32")
    masking.install_masks(model, {"c1/kernel": mask})
    assert np.all(np_(model.get_layer("c1").kernel) == 0)
    assert list(masking.current_masks(model)) == ["c1/kernel"]
    masking.remove_masks(model)
    assert masking.current_masks(model) == {}
    with pytest.raises(ValueError, match="has shape"):
        masking.install_masks(model, {"c1/kernel": np.ones((3, 3))})
    with pytest.raises(ValueError, match="nope/kernel"):
        masking.install_masks(model, {"nope/kernel": mask})


def test_mu_path_runs_algorithm_1_and_records_the_solution_path():
    x, y = digits()
    model = small_cnn()
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    path = MuPath.log_grid(0.05, 2.0, 3, start_index=0, delta=1, nu=2, xi=2)
    admm = ADMM("l0", mu=path, rho=10.0)
    assert admm.total_epochs == 1 * (1 + 1) + 2 * (2 + 1) + 2 * (2 + 1)
    history = model.fit(x, y, epochs=admm.total_epochs + 5, batch_size=64, verbose=0, callbacks=[admm])
    assert len(history.history["loss"]) <= admm.total_epochs  # stops by itself at the end of the path
    assert [round(r["mu"], 6) for r in admm.history] == [round(m, 6) for m in path.mus]
    sparsities = [r["sparsity"] for r in admm.history]
    assert sparsities == sorted(sparsities) and sparsities[-1] > 0  # a larger mu prunes more
    assert admm.phase == "done"


def test_state_round_trip_resumes_exactly(tmp_path):
    x, y = digits()

    def run(epochs, admm, model):
        model.fit(x, y, epochs=epochs, batch_size=len(x), shuffle=False, verbose=0, callbacks=[admm])

    path = MuPath([0.1, 0.5, 1.0], delta=1, nu=2, xi=2)
    keras.utils.set_random_seed(1)
    straight, admm_a = small_cnn(), ADMM("l1", mu=path, rho=10.0)
    initial = straight.get_weights()
    run(9, admm_a, straight)

    keras.utils.set_random_seed(1)
    first, admm_b = small_cnn(), ADMM("l1", mu=path, rho=10.0)
    first.set_weights(initial)
    run(4, admm_b, first)
    admm_b.save(str(tmp_path / "admm.npz"))
    first.save(str(tmp_path / "model.keras"))
    optimizer_state = [np_(v) for v in first.optimizer.variables]

    resumed = keras.saving.load_model(str(tmp_path / "model.keras"))
    admm_c = ADMM("l1", mu=path, rho=10.0).attach(resumed)
    admm_c.load(str(tmp_path / "admm.npz"))
    assert (admm_c.mu_index, admm_c.phase, admm_c.epochs_in_phase) == (admm_b.mu_index, admm_b.phase, admm_b.epochs_in_phase)
    resumed.optimizer.build(resumed.trainable_variables)
    for variable, value in zip(resumed.optimizer.variables, optimizer_state):
        variable.assign(value)
    run(5, admm_c, resumed)

    assert [r["mu"] for r in admm_c.history] == [r["mu"] for r in admm_a.history]
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for ta, tc in zip(admm_a.targets, admm_c.targets):
        np.testing.assert_allclose(np_(ta.f), np_(tc.f), rtol=1e-4, atol=1e-5)


def test_over_pruning_guard_uses_the_layer_mean_block_norm():
    model = small_cnn()
    kernel = np_(model.get_layer("c2").kernel)
    norms = np.linspace(0.01, 1.0, 64).reshape(8, 8)
    kernel = kernel / np.sqrt((kernel**2).sum(axis=(0, 1))) * norms
    model.get_layer("c2").kernel.assign(kernel)
    admm = ADMM("l0", mu=5.0, rho=10.0, layers=["c2"])  # b = sqrt(2 mu / rho) = 1: every filter would go
    admm.attach(model)
    admm.update()
    f_norms = filter_norms(admm.targets[0].f)
    np.testing.assert_array_equal(f_norms == 0, norms <= norms.mean() + 1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mu": 0.0}, "mu must be a finite positive float, got mu=0.0"),
        ({"rho": -1}, "rho must be a finite positive float, got rho=-1"),
        ({"block": "channel"}, "block must be one of"),
        ({"penalty": "l2"}, "penalty must be one of"),
        ({"update_every": 0}, "update_every"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ADMM(**kwargs)


def test_layers_without_kernels_are_refused():
    model = small_cnn()
    inputs = keras.Input((4,))
    pooled = keras.Model(inputs, keras.layers.Dropout(0.5, name="drop")(inputs))
    with pytest.raises(ValueError, match="drop"):
        ADMM(layers=["drop"]).attach(pooled)
    with pytest.raises(ValueError, match="does not have"):
        ADMM(layers=["missing"]).attach(model)


def test_block_axes():
    assert block_axes("filter", 4) == (0, 1)
    assert block_axes("kernel", 4) == (0, 1, 2)
    assert block_axes("filter", 2) == (0,)
    assert block_axes("element", 4) == ()


def test_mu_path_schedule_and_validation():
    path = MuPath.log_grid(1e-4, 1.0, 20, start_index=1, nu=20, xi=10)
    assert len(path) == 19 and abs(path.mu(0) - 10 ** (-4 + 4 / 19)) < 1e-12
    assert [path.epochs(i) for i in (0, 1, 18)] == [1, 2, 19]
    assert [path.max_iterations(i) for i in (0, 9, 18)] == [1, 10, 10]
    assert MuPath.from_config(path.get_config()).mus == path.mus
    with pytest.raises(ValueError, match="increasing"):
        MuPath([0.1, 0.05])
    with pytest.raises(ValueError, match="nu=0"):
        MuPath([0.1], nu=0)


def test_a_sparsity_target_zeroes_that_fraction_of_every_layer_by_thresholding():
    """The F-step with ``sparsity`` keeps the largest blocks of each layer, whatever its norm scale."""
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(20, 3, name="a"),
                              keras.layers.Conv2D(40, 3, name="b"), keras.layers.Flatten(), keras.layers.Dense(2)])
    kernel_b = model.get_layer("b").kernel
    kernel_b.assign(100 * keras.ops.convert_to_numpy(kernel_b))  # 100x the norms of layer a
    admm = ADMM("l0", rho=10.0, block="kernel", sparsity={"a": 0.25, "b": 0.5}, guard=0.5).attach(model)
    norms = {t.slot.layer.name: np.linalg.norm(keras.ops.convert_to_numpy(t.slot.variable).reshape(-1, t.slot.shape[-1]),
                                               axis=0) for t in admm.targets}
    result = admm.update()
    zero = {t.slot.layer.name: result["zero_blocks"][t.path] for t in admm.targets}
    assert zero == {"a": 5, "b": 20}
    for t in admm.targets:
        f = keras.ops.convert_to_numpy(t.f).reshape(-1, t.slot.shape[-1])
        kept = np.flatnonzero(np.linalg.norm(f, axis=0) > 0)
        largest = np.argsort(norms[t.slot.layer.name])[-len(kept):]
        assert set(kept) == set(largest)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sparsity": 1.0}, r"sparsity must be a fraction of blocks in \(0, 1\), got sparsity=1.0"),
        ({"sparsity": {"a": -0.1}}, r"sparsity\['a'\] must be a fraction"),
        ({"sparsity": 0.5, "penalty": "l1"}, "use penalty='l0'"),
        ({"sparsity": 0.5, "block": "coupled"}, "prune.to_target"),
    ],
)
def test_bad_sparsity_targets_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ADMM(**{"penalty": "l0", **kwargs})
