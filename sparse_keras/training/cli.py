"""The command line every training binary shares: ``--config`` (overridable), ``--workdir``, ``--overwrite``."""

import difflib
import importlib.util
import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from sparse_keras.training import checkpoint, workdir


def main(run, config_help):
    """Entry point of a binary: defines ``--config`` (an ml_collections config file, overridable with
    ``--config.key=value``), ``--workdir`` and ``--overwrite``, parses them, and calls
    ``run(config, workdir, overwrite=...)``.

    An unknown override key is named with the nearest valid one; a run that must not start (a bad config
    value, a workdir of another config or in use) prints its message alone and exits with status 2 (the
    traceback too with ``--verbosity=1``).

    Flags are defined here, when a binary is run, not when its module is imported, so that tests and
    other binaries can import several binaries into one process.
    """
    # Quiet by default: TensorFlow's and tfds' INFO lines (C++ and Python) would drown the progress bars;
    # --verbosity=0 (absl's own flag, INFO when given) brings them back, --verbosity=1 adds tracebacks too.
    config_flag = config_flags.DEFINE_config_file("config", None, config_help)
    workdir_flag = flags.DEFINE_string("workdir", None, "Directory for outputs, checkpoints and logs.")
    overwrite_flag = flags.DEFINE_bool("overwrite", False, "Delete the run the workdir holds (another config's, "
                                       "or a finished one) and start this one there.")
    flags.mark_flags_as_required(["config", "workdir"])

    def _main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        if not flags.FLAGS["verbosity"].present:
            absl_logging.set_verbosity(absl_logging.WARNING)
        # TensorFlow's Python logger has its own handler and level; it follows --verbosity like absl's.
        logging.getLogger("tensorflow").setLevel(logging.INFO if absl_logging.get_verbosity() >= 0 else logging.WARNING)
        try:
            run(config_flag.value, workdir_flag.value, overwrite=overwrite_flag.value)
        except (workdir.RunError, checkpoint.CheckpointError) as error:
            if flags.FLAGS.verbosity >= 1:
                raise
            print(f"Error: {error}", file=sys.stderr)
            sys.exit(2)

    _check_override_keys(sys.argv)
    app.run(_main)


def _check_override_keys(argv):
    """Exits (status 2) naming an unknown ``--config.<key>`` and the nearest valid key, before absl parses.

    ml_collections would fail on it with an ``AttributeError`` deep inside flag parsing.
    """
    path = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
    overrides = [a[len("--config."):].split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]
    if path is None or not overrides:
        return
    try:
        config = load_config(path)
    except Exception:  # noqa: BLE001 (a broken config file: absl's own parsing reports it)
        return
    flat = workdir.flatten(config.to_dict())
    known = set(flat) | {key.rsplit(".", i)[0] for key in flat for i in range(1, key.count(".") + 1)}
    for key in overrides:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean config.{near[0]}?" if near else ""
            print(f"Error: --config.{key}: config.{key} is not a key of {path}{hint}", file=sys.stderr)
            sys.exit(2)


def load_config(path):
    """The ConfigDict of a config file argument ``path[:argument]``, as ``--config=`` reads it."""
    path, _, argument = path.partition(":")
    spec = importlib.util.spec_from_file_location("_config_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(argument) if argument else module.get_config()
