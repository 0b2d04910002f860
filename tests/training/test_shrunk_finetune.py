"""ADMM's fine-tuning on the shrunk model (config.method.finetune_shrunk): the masked fine-tuning's result,
resumed exactly after a crash inside it, and refused where it cannot be done."""

import json
import os

import ml_collections
import numpy as np
import pytest

pytestmark = [pytest.mark.tf_only, pytest.mark.slow]


def _config(shrunk=True):
    from configs.smoke import fashion_mnist

    config = fashion_mnist.get_config("admm")
    config.method.finetune_shrunk = shrunk
    config.method.sparsify_optimizer = ml_collections.ConfigDict(
        {"name": "sgd", "learning_rate": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0})
    config.method.sparsify_schedule = ml_collections.ConfigDict(
        {"name": "cosine", "boundaries": (), "decay": 0.1, "warmup_epochs": 0.0, "final_learning_rate": 0.0})
    return config


def _run(config, workdir):
    import keras

    from sparse_keras.training import experiment

    keras.backend.clear_session()
    return experiment.run(config, str(workdir))


def _weights(workdir):
    import keras

    return keras.saving.load_model(os.path.join(workdir, "model.keras"), compile=False).get_weights()


@pytest.fixture(scope="module")
def shrunk_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shrunk")
    return workdir, _run(_config(), workdir)


def test_fine_tuning_the_shrunk_model_gives_the_masked_fine_tuning_result(shrunk_run, tmp_path, capsys):
    workdir, summary = shrunk_run
    masked = _run(_config(shrunk=False), tmp_path)
    assert "on the shrunk model" not in capsys.readouterr().out
    got, expected = _weights(workdir), _weights(tmp_path)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)  # float round-off of other GEMM shapes
    assert summary["macs"] == masked["macs"] < summary["base_macs"]
    assert abs(summary["test_accuracy"] - masked["test_accuracy"]) <= 2 / 10000  # two test images
    finetune = json.load(open(workdir / "history.json"))["3"]
    assert finetune["stage"] == "finetune" and finetune["macs"] == summary["macs"]


def test_a_crash_inside_the_shrunk_fine_tuning_resumes_exactly(shrunk_run, tmp_path, monkeypatch, capsys):
    from sparse_keras.training import checkpoint

    class Crash(BaseException):
        pass

    real_save = checkpoint.Checkpointer.save

    def save_then_crash(self, stage, epoch, batch):
        path = real_save(self, stage, epoch, batch)
        if stage == 2 and batch == 6:  # a checkpoint inside the fine-tuning epoch, its momenta in it
            raise Crash(path)
        return path

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save_then_crash)
    with pytest.raises(Crash):
        _run(_config(), tmp_path)
    assert "on the shrunk model" in capsys.readouterr().out
    monkeypatch.setattr(checkpoint.Checkpointer, "save", real_save)
    _run(_config(), tmp_path)
    assert "Resuming" in capsys.readouterr().out
    for a, b in zip(_weights(tmp_path), _weights(shrunk_run[0])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_model_whose_shrink_cannot_be_written_back_is_fine_tuned_masked_with_a_warning(
        shrunk_run, tmp_path, monkeypatch, capsys):
    from sparse_keras.sparsity import shrunk_twin as twin_lib

    def unmappable(model, tau=0.0, scheme=None):
        raise twin_lib.UnmappableShrink("conv/kernel: rebuilt in another form")

    monkeypatch.setattr(twin_lib, "ShrunkTwin", unmappable)
    summary = _run(_config(), tmp_path)
    out = capsys.readouterr().out
    assert "WARNING: stage finetune trains the masked model, not the shrunk one: conv/kernel" in out
    assert "on the shrunk model" not in out
    assert summary["macs"] == shrunk_run[1]["macs"]
    for a, b in zip(_weights(tmp_path), _weights(shrunk_run[0])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"finetune_shrunk": "yes"}, "config.method.finetune_shrunk must be True or False, got 'yes'"),
    ({"sparsify_optimizer": None, "sparsify_schedule": None},
     "config.method.finetune_shrunk=True needs config.method.sparsify_optimizer"),
])
def test_bad_settings_fail_naming_the_key_before_the_workdir_exists(changes, message, tmp_path):
    from sparse_keras.training import experiment
    from sparse_keras.training import workdir as workdir_lib

    config = _config()
    config.method = ml_collections.ConfigDict({**config.method.to_dict(), **changes})  # as a config file sets it
    with pytest.raises(workdir_lib.RunError, match=message):
        experiment.run(config, str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()
