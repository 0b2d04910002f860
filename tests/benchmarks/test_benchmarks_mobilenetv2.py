"""Smoke tests of ``benchmarks.mobilenetv2_fashion_mnist``: flags, verdicts, the table, one tiny real run.

Accuracies and timings are not checked (``--quick`` trains one epoch on 256 examples).
"""

import json

import numpy as np
import pytest

from benchmarks import mobilenetv2_fashion_mnist as bench

DENSE = {"method": "dense", "accuracy": 90.0, "macs": 2_000_000, "params": 700_000, "epochs": 10, "train_s": 1.0}


def pruned(method="l1", accuracy=89.5, macs=990_000, dense_ms=20.0, ms=15.0, **extra):
    return {"method": method, "accuracy": accuracy, "macs": macs, "params": 400_000, "epochs": 13, "train_s": 1.0,
            "dense_latency_ms": {"1": 5.0, "64": dense_ms}, "latency_ms": {"1": 4.0, "64": ms}, **extra}


def test_quick_overrides_the_sizes_and_bad_flags_are_refused():
    args = bench.parse_args(["--quick", "--methods", "l1", "tfmot"])
    assert (args.train_examples, args.pretrain_epochs, args.methods) == (256, 1, ["l1", "tfmot"])
    for bad in (["--macs", "1.5"], ["--admm_quantile", "0"], ["--methods", "nope"], ["--finetune_epochs", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_verdicts_judge_each_goal():
    assert bench.verdicts(pruned(), DENSE) == {"macs": True, "accuracy": True, "speedup": True}
    # 2.02x fewer MACs need a 1.21x speedup; 20 / 17 = 1.18x is not enough.
    assert not bench.verdicts(pruned(ms=17.0), DENSE)["speedup"]
    assert bench.verdicts(pruned(accuracy=88.9, macs=1_100_000), DENSE) == {
        "macs": False, "accuracy": False, "speedup": True}
    # tfmot runs the dense multiply-adds; its speedup is judged against the reduction it claims on paper.
    tfmot = pruned("tfmot", macs=2_000_000, paper_macs=1_000_000, ms=19.0)
    assert bench.verdicts(tfmot, DENSE) == {"macs": False, "accuracy": True, "speedup": False}


def test_table_has_a_row_per_method_and_the_verdict_lines():
    rows = [DENSE, pruned(macs_match=True, predicted_macs=990_000, shrink_output_gap=0.0),
            {"method": "tfmot", "error": "exit 1: ImportError"}]
    for row in rows[1:2]:
        row["verdicts"] = bench.verdicts(row, DENSE)
    config = vars(bench.parse_args([]))
    table = bench.format_table({"config": config, "backend": "tensorflow", "device": "2-core CPU", "rows": rows}, "cmd")
    assert "| L1-norm filter pruning (Li et al. 2017) | 13 | 89.50 | 990,000 | 2.02x | 400,000 |" in table
    assert "failed: exit 1: ImportError" in table
    assert "- PASS L1-norm filter pruning (Li et al. 2017): MACs 2.02x PASS" in table
    assert "990,000 vs 990,000 (equal)" in table


@pytest.mark.tf_only
def test_the_data_are_32x32_rgb_in_a_fixed_order_per_seed():
    from benchmarks.tfmot_mobilenetv2 import dataset

    x = np.random.default_rng(0).random((10, 28, 28, 1), dtype="float32")
    y = np.arange(10)
    images, _ = next(iter(dataset(x, y, 4)))
    assert images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    orders = [np.concatenate([b[1].numpy() for b in dataset(x, y, 4, seed=3)]) for _ in range(2)]
    np.testing.assert_array_equal(*orders)


@pytest.mark.slow
@pytest.mark.tf_only  # the data come from tfds; about 70 s on 2 CPU cores shared with other jobs (compilation)
def test_quick_run_prunes_shrinks_and_reports_exactly(tmp_path):
    result = bench.main(["--quick", "--methods", "l1", "--out", str(tmp_path)])
    dense, row = result["rows"]
    assert row["macs_match"] and row["predicted_params"] == row["params"] < dense["params"]
    assert dense["macs"] / row["macs"] >= 2.0
    assert row["shrink_output_gap"] < 1e-4
    assert all(v > 0 for v in row["latency_ms"].values())
    saved = json.loads((tmp_path / "mobilenetv2_fashion_mnist.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["dense", "l1"]
    assert "Goals" in (tmp_path / "mobilenetv2_fashion_mnist.md").read_text()
