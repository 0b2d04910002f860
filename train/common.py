"""What every training binary shares: checking the workdir before any work starts."""

import os


def prepare_workdir(workdir):
    """Creates ``workdir`` and proves it writable before training starts."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise ValueError(f"--workdir={workdir!r} is not a writable directory: {error}") from None
    return workdir


def main(run, config_help):
    """Entry point of a binary: defines ``--config`` (an ml_collections config file, overridable with
    ``--config.key=value``) and ``--workdir``, parses them, and calls ``run(config, workdir)``.

    Flags are defined here, when a binary is run, not when its module is imported, so that tests and
    other binaries can import several binaries into one process.
    """
    from absl import app, flags
    from ml_collections import config_flags

    config_flag = config_flags.DEFINE_config_file("config", None, config_help)
    workdir_flag = flags.DEFINE_string("workdir", None, "Directory for outputs, checkpoints and logs.")
    flags.mark_flags_as_required(["config", "workdir"])

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        run(config_flag.value, workdir_flag.value)

    app.run(_main)
