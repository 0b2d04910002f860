"""The LST benchmark scripts' flags and verdicts (their timed runs are benchmarks, not tests)."""

import pytest

from benchmarks import lst_fashion_mnist, lst_speed


def result(device_type, lst_train_s, lst_infer_s):
    timings = (
        lst_speed.Timing("lstnet_resnet20", 177_954, (lst_train_s,) * 3, (lst_infer_s,) * 3),
        lst_speed.Timing("resnet20", 272_474, (0.02,) * 3, (0.01,) * 3),
    )
    return lst_speed.Result("jax", "test device", device_type, 128, 3, 3, True, "auto", timings)


def test_gpu_verdict_needs_twice_the_official_throughput_in_training_and_inference():
    # 128 / 0.0125 s = 10,240 images/s >= 9,600 (2 x 4,800); 128 / 0.014 s = 9,143 < 9,600.
    assert result("gpu", 0.0125, 0.005).passed is True
    assert result("gpu", 0.014, 0.005).passed is False
    assert result("gpu", 0.0125, 0.014).passed is False
    assert result("cpu", 1.0, 1.0).passed is None  # no CPU target


def test_table_reports_the_lst_over_baseline_ratios():
    table = lst_speed.format_table(result("cpu", 0.04, 0.02), "cmd")
    assert "| lstnet_resnet20 | 177,954 | 3,200 | 6,400 | - |" in table
    assert "training 0.50x, inference 0.50x" in table


def test_quick_flags_override_the_sizes():
    args = lst_speed.parse_args(["--quick"])
    assert (args.batch_size, args.depths) == (lst_speed.QUICK["batch_size"], lst_speed.QUICK["depths"])
    with pytest.raises(SystemExit):
        lst_speed.parse_args(["--spatial_implementation", "im2col"])
    with pytest.raises(SystemExit):
        lst_fashion_mnist.parse_args(["--epochs", "0"])
