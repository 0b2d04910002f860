"""Smoke test of benchmarks/csc_speed.py: it runs end to end; its timings are not checked here."""

import math

import pytest

from benchmarks import csc_speed


@pytest.mark.slow  # compiles four one-layer models (train + predict)
def test_layer_part_quick_run():
    result = csc_speed.main(["--quick", "--models", "none", "--reference"])
    assert [t.name for t in result.layers] == ["conv", "csc", "csc_frozen_step"]
    assert all(len(t.train_s) == csc_speed.QUICK["rounds"] for t in result.layers)
    conv, csc, _ = result.layers
    assert math.isfinite(result.ratio(csc, conv, "train")) and result.ratio(csc, conv, "infer") > 0
    # --reference: the same layer with the former transposed-convolution synthesis, timed beside it.
    [(now, before)] = result.references
    assert (now.name, before.name) == ("csc", "csc_transposed") and result.ratio(before, now, "train") > 0


def test_bad_flags_are_refused():
    with pytest.raises(SystemExit):
        csc_speed.parse_args(["--models", "resnet_unknown"])
    with pytest.raises(SystemExit):
        csc_speed.parse_args(["--steps", "0"])
    assert csc_speed.parse_args(["--models", "sdnet18"]).models == ("sdnet18",)
