"""Smoke tests of the benchmark scripts: they run end to end; their timings are not checked here."""

import math

import pytest

from benchmarks import regularizer_overhead


@pytest.mark.slow  # compiles two ResNet-20 train steps (about a minute on JAX/CPU)
def test_regularizer_overhead_quick_run():
    result = regularizer_overhead.main(["--quick"])
    assert result.batch_size == regularizer_overhead.QUICK["batch_size"]
    assert result.regularized_kernels == 21  # 19 3x3 convs + 2 1x1 shortcuts, classifier excluded
    assert len(result.ratios) == regularizer_overhead.QUICK["rounds"]
    assert math.isfinite(result.ratio) and result.ratio > 0


def test_regularizer_overhead_rejects_bad_flags():
    with pytest.raises(SystemExit):
        regularizer_overhead.parse_args(["--steps", "0"])
