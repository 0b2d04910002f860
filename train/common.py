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
