"""The efficient-frontier sweep (sparse_keras/training/sweep.py, sparse_keras/reports/frontier.py, configs/ssr/*.py)."""
import glob
import importlib
import json
import os

import keras
import pytest

from sparse_keras import models
from sparse_keras.reports import frontier, plots

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob("configs/ssr/*.py") if not p.endswith(("__init__.py", "base.py")))


def _point(kind="learned", alpha=1e-3, accuracy=0.8, macs=1000, label="Omega_1+Omega_2"):
    layers = [{"layer": "conv1", "base_width": 8, "width": 5, "sizes": {"3": 4, "2": 1}},
              {"layer": "conv2", "base_width": 8, "width": 2, "sizes": {"1": 2}}]
    return frontier.FrontierPoint(kind, label, alpha, accuracy, params=10, macs=macs, deployed_macs=macs + 1,
                                  latency_ms={1: 0.5, 64: 3.0}, depth=2, layers=layers if kind == "learned" else [])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_loads_and_builds_its_model(name):
    config = importlib.import_module(f"configs.ssr.{name}").get_config()
    assert config.method.name == "ssr" and config.sweep.alphas and config.method.tau > 0
    model = models.get(config.model.name, num_classes=10, input_shape=(32, 32, 3), **dict(config.model.kwargs))
    assert model(keras.ops.zeros((1, 32, 32, 3))).shape == (1, 10)


def test_uniform_thinning_matches_the_target_multiply_adds():
    def macs_of(f):  # a staircase, as rounded widths give
        return int(round(16 * f)) ** 2 * 100

    f = frontier.match_width_multiplier(macs_of, 8**2 * 100)
    assert macs_of(f) == 6400
    with pytest.raises(ValueError, match="target_macs=1,000,000"):
        frontier.match_width_multiplier(macs_of, 1_000_000)


def test_table_has_one_row_per_point_and_round_trips(tmp_path):
    points = [_point(alpha=1e-3), _point(alpha=1e-2, macs=500), _point("uniform", 1e-3, 0.7), _point("dense", None, 0.9, 4000)]
    paths = frontier.write_table(points, str(tmp_path / "frontier"))
    lines = open(paths["csv"]).read().strip().splitlines()
    assert len(lines) == 1 + len(points) and "latency_ms_b64" in lines[0]
    assert "5 2" in lines[1] and "2:1 3:4 | 1:2" in lines[1]  # widths and sizes per layer
    assert frontier.from_json(open(paths["json"]).read()) == points
    with pytest.raises(ValueError, match="kind='bogus'"):
        _point("bogus")


def test_plots_are_written(tmp_path):
    points = [_point(alpha=1e-3), _point(alpha=1e-2, macs=500), _point("uniform", 1e-3, 0.7), _point("dense", None, 0.9, 4000)]
    for plot in (plots.plot_frontier, plots.plot_width_family, plots.plot_size_family):
        path = plot(points, str(tmp_path / f"{plot.__name__}.png"))
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one learned point"):
        plots.plot_width_family([_point("dense", None)], str(tmp_path / "x.png"))


def test_each_learned_architecture_is_compared_with_its_uniform_twin_of_the_same_seed_and_alpha(tmp_path):
    def point(kind, seed, accuracy, label="Omega_1", b1=1.0, b64=10.0, twin_of=""):
        return frontier.FrontierPoint(kind, label, 0.04, accuracy, params=10, macs=100, deployed_macs=100,
                                      latency_ms={1: b1, 64: b64}, depth=2, seed=seed, twin_of=twin_of)

    points = [
        point("learned", 0, 0.70),  # the regularized weights: less accurate than the twin
        point("learned", 0, 0.82, label="Omega_1, retrained", b1=0.8, b64=9.0),  # more accurate and faster
        point("uniform", 0, 0.80, label="uniformly thinned", twin_of="Omega_1"),
        point("learned", 1, 0.81, label="Omega_1, retrained", b1=1.1, b64=9.0),  # more accurate, slower at b1
        point("uniform", 1, 0.79, label="uniformly thinned", twin_of="Omega_1"),
        point("uniform", 1, 0.99, label="uniformly thinned", twin_of="Omega_3 (Omega_1)"),  # another series' twin
        point("dense", None, 0.9, label="dense base"),
    ]
    pairs = frontier.compare_with_uniform(points)
    assert [(p["seed"], p["label"], p["wins"]) for p in pairs] == [
        (0, "Omega_1", False), (0, "Omega_1, retrained", True), (1, "Omega_1, retrained", False)]
    assert pairs[1]["accuracy_gain"] == pytest.approx(2.0) and pairs[1]["latency_ratio"] == pytest.approx({1: 1.25, 64: 10 / 9})
    assert pairs[2]["latency_ratio"][1] == pytest.approx(1 / 1.1)
    frontier.write_comparison(points, str(tmp_path / "c.md"))
    text = open(tmp_path / "c.md").read()
    assert "| Omega_1, retrained | 0.04 | 2 | +2.00 | +2.00 / +2.00 |" in text and "| 1/2 |" in text
    assert frontier.write_comparison([p for p in points if p.kind != "uniform"], str(tmp_path / "none.md")) == []
    assert not os.path.exists(tmp_path / "none.md")


@pytest.mark.tf_only
def test_bad_sweep_config_fails_naming_the_value():
    from configs.ssr import smoke
    from sparse_keras.training import sweep

    config = smoke.get_config()
    config.sweep.variants = ("plain", "omega9")
    with pytest.raises(ValueError, match="omega9"):
        sweep.check_config(config)
    config = smoke.get_config()
    config.sweep.alphas = (1e-3, -1.0)
    with pytest.raises(ValueError, match="-1.0"):
        sweep.check_config(config)
    config = smoke.get_config()
    config.sweep.seeds = (0, 0)
    with pytest.raises(ValueError, match=r"seeds must be distinct .* \(0, 0\)"):
        sweep.check_config(config)


@pytest.mark.tf_only
@pytest.mark.slow
def test_tiny_sweep_end_to_end_on_real_fashion_mnist(tmp_path):
    """512 real images, one strong alpha: a smaller learned network, its uniform twin, the learned architecture
    trained again from scratch, plots, table, exports."""
    import tensorflow as tf

    from configs.ssr import smoke
    from sparse_keras.training import sweep

    config = smoke.get_config()
    config.sweep.alphas = (smoke.STRONG_ALPHA,)
    config.sweep.variants = ("plain",)
    config.sweep.dense_baseline = False
    config.sweep.retrain = True
    config.sweep.seeds = (3,)  # the multi-seed layout, at the cost of one seed
    points = sweep.run(config, str(tmp_path))

    learned, uniform, retrained = points
    assert learned.kind == "learned" and uniform.kind == "uniform" and uniform.twin_of == learned.label
    assert retrained.label == f"{learned.label}, retrained" and retrained.deployed_macs == learned.deployed_macs
    assert {p.seed for p in points} == {3}
    assert learned.macs < frontier_base_macs(config)  # the regularizer removed structure
    assert abs(uniform.deployed_macs - learned.deployed_macs) <= 0.25 * learned.deployed_macs  # same cost, thinned
    assert all(p.latency_ms[1] > 0 and 0 <= p.accuracy <= 1 for p in points)
    for name in ("frontier.png", "seed_3/widths.png", "seed_3/sizes.png", "frontier.md", "frontier.csv",
                 "frontier.json", "comparison.md"):
        assert os.path.getsize(tmp_path / name) > 0
    assert len(json.load(open(tmp_path / "frontier.json"))) == 3
    comparison = open(tmp_path / "comparison.md").read()
    assert f"| 3 | {learned.label} |" in comparison and f"| 3 | {retrained.label} |" in comparison
    exported = tf.saved_model.load(str(tmp_path / "seed_3" / "plain" / f"alpha_{smoke.STRONG_ALPHA:.3g}" / "saved_model"))
    assert exported.serve(tf.zeros((2, 28, 28, 1))).shape == (2, 10)
    # A second run resumes: every point is finished, nothing is trained again, the same rows come back.
    again = sweep.run(config, str(tmp_path))
    assert [(p.kind, p.macs, p.accuracy) for p in again] == [(p.kind, p.macs, p.accuracy) for p in points]


@pytest.mark.tf_only
def test_retraining_uses_the_baselines_recipe_on_the_saved_architecture(tmp_path):
    from configs.ssr import smoke
    from sparse_keras.models import keras_file
    from sparse_keras.training import sweep

    config = smoke.get_config()
    base = models.get(config.model.name, num_classes=10, input_shape=(28, 28, 1), **dict(config.model.kwargs))
    path = str(tmp_path / "arch.keras")
    keras_file.reinitialized(base, like=base).save(path)
    retrain = sweep.retrain_config(config, path)
    assert retrain.method.name == "none" and retrain.epochs == config.epochs + config.method.finetune_epochs
    assert (retrain.model.name, dict(retrain.model.kwargs)) == ("keras_file", {"path": path, "reinitialize": True})
    model = models.get("keras_file", num_classes=10, input_shape=(28, 28, 1), **dict(retrain.model.kwargs))
    assert model.count_params() == base.count_params()
    with pytest.raises(ValueError, match="num_classes=7"):
        models.get("keras_file", num_classes=7, input_shape=(28, 28, 1), path=path)
    with pytest.raises(ValueError, match="nowhere.keras"):
        models.get("keras_file", num_classes=10, input_shape=(28, 28, 1), path="/nowhere.keras")


def frontier_base_macs(config):
    from sparse_keras import analysis

    model = models.get(config.model.name, num_classes=10, input_shape=(28, 28, 1), **dict(config.model.kwargs))
    return analysis.report(model, tau=0.0).base_macs
