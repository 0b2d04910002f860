"""Smoke tests of ``benchmarks.admm_vs_baselines``: every method row exists with finite numbers.

Accuracies and timings are not checked (``--quick`` trains one epoch on 512 examples).
"""

import importlib.util
import json
import math

import pytest

from benchmarks import admm_vs_baselines, tfmot_baseline

pytestmark = pytest.mark.tf_only  # the data come from tfds

NUMBERS = ("accuracy", "filters_removed_pct", "weight_sparsity", "nonzero_params", "params", "train_s")


def _check_row(row):
    for key in NUMBERS:
        assert math.isfinite(row[key]), (row["method"], key, row[key])
    assert row["nonzero_params"] <= row["params"]
    assert set(row["zero_filters"]) == set(admm_vs_baselines.LAYERS)
    assert row["zero_filters_total"] == sum(v["zero"] for v in row["zero_filters"].values())
    assert all(math.isfinite(v) and v > 0 for v in row["latency_ms"].values())
    assert set(row["latency_ms"]) == {"1", "64"}


@pytest.mark.slow  # about 35 s on 2 CPU cores
def test_quick_run_has_every_method(tmp_path):
    output = tmp_path / "result.json"
    result = admm_vs_baselines.main(["--quick", "--skip_tfmot", "--output", str(output)])
    assert [r["method"] for r in result["rows"]] == ["dense", "dense_long", "admm_l0", "admm_l1", "group_lasso"]
    for row in result["rows"]:
        _check_row(row)
    assert all("passed" in r and "passed_long" in r for r in result["rows"][2:])
    assert result["rows"][1]["epochs"] == 3  # pre-training + sparsifying + fine-tuning epochs
    assert json.loads(output.read_text())["rows"][0]["method"] == "dense"


def test_filter_stats_counts_2d_filters():
    import numpy as np

    conv = np.ones((3, 3, 2, 4), "float32")
    conv[:, :, 0, 1] = 0
    conv[0, 0, 1, 2] = 0  # one zero weight does not make a zero filter
    dense = np.ones((5, 3), "float32")
    dense[:, 2] = 0
    stats = tfmot_baseline.filter_stats({"conv": conv, "fc": dense})
    assert stats["zero_filters"] == {"conv": {"zero": 1, "filters": 8}, "fc": {"zero": 1, "filters": 3}}
    assert stats["filters_removed_pct"] == pytest.approx(100 * 2 / 11)


def test_rejects_bad_flags():
    with pytest.raises(SystemExit):
        admm_vs_baselines.parse_args(["--mus", "0,1"])
    with pytest.raises(SystemExit):
        admm_vs_baselines.parse_args(["--epochs", "0"])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow_model_optimization") is None,
                    reason="needs the tfmot extra (pip install -e .[tfmot])")
def test_tfmot_subprocess_quick():
    args = admm_vs_baselines.parse_args(["--quick"])
    x_train, y_train, x_test, y_test = admm_vs_baselines.load_fashion_mnist(64, 32)
    dense = admm_vs_baselines._model(args)
    row = admm_vs_baselines.run_tfmot(dense.get_weights(), dense, 0.5, (x_train, y_train, x_test, y_test), args)
    assert row["method"] == "tfmot"
    _check_row(row)
    # Magnitude pruning of each sparsified kernel to the target weight sparsity.
    assert row["weight_sparsity"] == pytest.approx(0.5, abs=0.01)
