"""The shrunk model is an ordinary Keras model: it saves, loads, exports and converts; and the latency
report compares it with the original."""

import os

import keras
import numpy as np
import pytest
from export_checks import assert_export_serves_and_converts_to_tflite

from sparse_keras import benchmark, models
from sparse_keras.shrinking import shrink, synthetic
from sparse_keras.utils import timing

INPUT_SHAPE = (12, 12, 3)


@pytest.fixture
def models_pair():
    """A ResNet with dead channels, a vanished branch (identity path with an offset) and cropped kernels in
    mixed sizes (grouped convs), and its shrunk copy."""
    model = models.get("resnet20", input_shape=INPUT_SHAPE)
    synthetic.zero_structures(model, channel_fraction=0.5, shrink_fraction=0.6, seed=7)
    for name in ("stage3_block3_conv1", "stage3_block3_conv2"):
        model.get_layer(name).kernel.assign(np.zeros(model.get_layer(name).kernel.shape, "float32"))
    model.get_layer("stage3_block3_bn2").beta.assign(np.full(64, 0.1, "float32"))
    shrunk = shrink(model, mixed_sizes="grouped")
    names = {layer.name for layer in shrunk.layers}
    assert "stage3_block3_add_offset" in names and any(n.endswith("_concat") for n in names)
    x = np.random.default_rng(0).normal(size=(3, *INPUT_SHAPE)).astype("float32")
    return model, shrunk, x


def _close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_keras_file_round_trip(models_pair, tmp_path):
    model, shrunk, x = models_pair
    path = os.fspath(tmp_path / "shrunk.keras")
    shrunk.save(path)
    loaded = keras.saving.load_model(path)
    _close(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x, training=False)))
    assert os.path.getsize(path) < benchmark.keras_file_bytes(model)


@pytest.mark.tf_only
def test_saved_model_export_serves_and_converts_to_tflite(models_pair, tmp_path):
    model, shrunk, x = models_pair
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert_export_serves_and_converts_to_tflite(shrunk, x, expected, os.fspath(tmp_path / "saved"))


def test_latency_times_each_runtime_and_batch_size():
    model = models.get("plain_cnn", input_shape=(8, 8, 1), widths=(4,), kernel_sizes=(3,), pool_after=())
    runtimes = ("tf", "tflite") if keras.backend.backend() == "tensorflow" else ("keras",)
    result = benchmark.latency(model, (8, 8, 1), batch_sizes=(1, 4), runtimes=runtimes, repeats=2)
    assert set(result) == {(r, b) for r in runtimes for b in (1, 4)}
    assert all(np.isfinite(s) and s > 0 for s in result.values())


def test_latency_rejects_unknown_runtimes_and_batches():
    model = models.get("plain_cnn", input_shape=(8, 8, 1), widths=(4,), kernel_sizes=(3,), pool_after=())
    with pytest.raises(ValueError, match="onnx"):
        benchmark.latency(model, (8, 8, 1), runtimes=("onnx",))
    with pytest.raises(ValueError, match="batch_sizes"):
        benchmark.latency(model, (8, 8, 1), batch_sizes=(0,), runtimes=("keras",))


def test_comparison_warns_when_multiply_adds_fall_but_latency_does_not():
    def comparison(after_seconds):
        return benchmark.Comparison("dense", "shrunk", (100, 25), (4000, 1000), (900, 300), {("keras", 64): (1.0, after_seconds)})

    fast, slow = comparison(0.3), comparison(1.1)
    assert fast.mac_reduction == 4.0 and fast.efficiency("keras", 64) == pytest.approx(1 / 0.3 / 4)
    assert not fast.warnings()
    assert "fell 4.00x but latency only 0.91x" in slow.warnings()[0]
    assert "**Warning**" in slow.to_markdown() and "| multiply-adds | 4,000 | 1,000 | 4.00x |" in slow.to_markdown()


def test_compare_measures_both_models():
    model = models.get("plain_cnn", input_shape=(8, 8, 1), widths=(8, 8), kernel_sizes=(3, 3), pool_after=())
    synthetic.zero_structures(model, channel_fraction=0.5, seed=2)
    shrunk = shrink(model)
    result = benchmark.compare(model, shrunk, (8, 8, 1), batch_sizes=(2,), runtimes=("keras",), repeats=2)
    assert result.params[1] < result.params[0] and result.macs[1] < result.macs[0]
    assert ("keras", 2) in result.latency and "speedup / MAC reduction" in result.to_markdown()


def test_compare_alternates_the_models_and_keeps_each_ones_fastest_round(monkeypatch):
    model = models.get("plain_cnn", input_shape=(8, 8, 1), widths=(4,), kernel_sizes=(3,), pool_after=())
    shrunk = shrink(model)
    calls, clock = [], iter([5.0, 4.0, 1.0, 9.0, 3.0, 2.0])  # a machine whose load changes from round to round

    def fake_seconds(timed, input_shape, repeats=10, warmup=2):
        calls.append("original" if timed is model else "shrunk")
        return next(clock)

    monkeypatch.setattr(timing, "keras_seconds", fake_seconds)  # the one timer every report uses
    result = benchmark.compare(model, shrunk, (8, 8, 1), batch_sizes=(2,), runtimes=("keras",), rounds=3)
    assert calls == ["original", "shrunk", "shrunk", "original", "original", "shrunk"]
    assert result.latency["keras", 2] == (3.0, 1.0)  # min(5, 9, 3) and min(4, 1, 2)
    with pytest.raises(ValueError, match="rounds=0"):
        benchmark.compare(model, shrunk, (8, 8, 1), batch_sizes=(2,), runtimes=("keras",), rounds=0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="test-time budget: ~35 s of compilation on JAX")
def test_speedup_benchmark_quick_run_prints_ratios(capsys):
    from benchmarks import shrink_speedup

    rows = shrink_speedup.main(["--quick"])
    assert [r["sparsity"] for r in rows] == list(shrink_speedup.SPARSITY)
    assert all(r["mac_reduction"] > 1 and np.isfinite(r["efficiency"]) for r in rows)
    assert "speedup / MAC reduction" in capsys.readouterr().out
