"""A run's workdir: its identity (the config it was started with), its lock, and its finish mark.

A workdir belongs to one config. :func:`claim` writes the resolved config to ``config.json`` when a run
starts there, refuses a different config in a used workdir (naming the differing keys) unless asked to
overwrite, and takes the workdir's lock, so that two processes never write one run. The lock file holds
the owner's pid and host; a lock whose pid is dead on this host is stale and taken over.

:func:`mark_finished` is written after every final output, so a rerun of a finished command can leave its
results alone; a run killed before it (even while writing the outputs) resumes from its last checkpoint
and writes them again from the restored trained state.

``SPARSE_KERAS_KILL_AT=<point>`` makes :func:`kill_point` SIGKILL the process at that named point (the
fault-injection tests and ``benchmarks/fault_matrix.py`` kill runs at each write with it).
"""

import contextlib
import json
import os
import shutil
import signal
import socket

from sparse_keras.utils import files

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
FINISHED_FILE = "finished.json"
KILL_ENV = "SPARSE_KERAS_KILL_AT"


class RunError(ValueError):
    """A run that must not start (a bad config value, a workdir it must not write): the message says why.

    Training binaries print it alone and exit with status 2.
    """


class WorkdirError(RunError):
    """A workdir that this run must not write: another config's, or one another process is writing."""


def kill_point(name):
    """SIGKILLs this process when ``SPARSE_KERAS_KILL_AT`` names ``name`` (fault-injection tests)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def flatten(tree, prefix=""):
    """``{"a.b.c": leaf}`` of a nested mapping (a ConfigDict's ``to_dict()``); tuples become lists (JSON)."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = list(value) if isinstance(value, tuple) else value
    return out


def differences(old, new, ignore=()):
    """Sorted ``[(key, old value, new value)]`` of two flattened configs; ``"<absent>"`` for a missing key."""
    keys = sorted((set(old) | set(new)) - set(ignore))
    missing = "<absent>"
    return [(k, old.get(k, missing), new.get(k, missing)) for k in keys if old.get(k, missing) != new.get(k, missing)]


def _lock_path(workdir):
    return os.path.join(workdir, LOCK_FILE)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _take_lock(workdir):
    """Creates the lock file (O_EXCL); takes over a stale one; raises naming a live owner."""
    path = _lock_path(workdir)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    owner = json.load(f)
            except (OSError, ValueError):
                owner = {}  # being written right now, or garbage: look again
            if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
                print(f"Taking over {path}: its owner, pid {owner['pid']} on {owner['host']}, is gone")
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                continue
            if owner:
                raise WorkdirError(
                    f"--workdir={workdir!r} is in use by pid {owner.get('pid')} on host {owner.get('host')!r} "
                    f"(lock file {path}). Wait for that run, stop it, or use another workdir; delete the lock file "
                    "only if that process is certainly gone."
                )
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise WorkdirError(f"Could not take the lock {path} of --workdir={workdir!r}: it keeps changing hands")


def _release_lock(workdir):
    path = _lock_path(workdir)
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            if json.load(f).get("pid") == os.getpid():
                os.remove(path)


def _clear(workdir):
    """Removes everything a previous run wrote to ``workdir`` (``--overwrite``), the lock excepted."""
    for name in os.listdir(workdir):
        if name == LOCK_FILE:
            continue
        path = os.path.join(workdir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _check_identity(workdir, config, ignore):
    """``config`` flattened. Raises when ``workdir`` holds another config's run; returns whether it holds any run at all."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        # A workdir with outputs but no config.json predates run identities (or is someone else's directory).
        used = [n for n in os.listdir(workdir) if n not in (LOCK_FILE,) and not n.startswith(".tmp")]
        if used:
            raise WorkdirError(
                f"--workdir={workdir!r} already holds files ({', '.join(sorted(used)[:5])}) but no {CONFIG_FILE}: "
                "it cannot be told whether they belong to this config. Use a new workdir, or --overwrite to "
                "delete them."
            )
        return False
    with open(path) as f:
        old = json.load(f)
    changed = differences(old, config, ignore)
    if changed:
        lines = "\n".join(f"  {key}: {a!r} (workdir) != {b!r} (now)" for key, a, b in changed)
        raise WorkdirError(
            f"--workdir={workdir!r} holds a run of another config; these keys differ:\n{lines}\n"
            "Use a new workdir, or --overwrite to delete that run and start this one."
        )
    return True


def _remove_temporaries(workdir):
    """Leftovers of writes that a kill interrupted (``.tmp-*`` files and directories)."""
    for name in os.listdir(workdir):
        if name.startswith(".tmp"):
            path = os.path.join(workdir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def prepare(workdir):
    """Creates ``workdir`` and proves it writable; returns it."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".tmp-write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise WorkdirError(f"--workdir={workdir!r} is not a writable directory: {error}") from None
    return workdir


@contextlib.contextmanager
def claim(workdir, config, overwrite=False, ignore=()):
    """Holds ``workdir`` for a run of ``config`` (a nested dict) while the ``with`` body runs.

    Creates the workdir, takes its lock (released on exit, also on errors), checks that it holds nothing or a
    run of this same config (``ignore`` lists keys that do not change results, e.g. progress printing), and
    writes ``config.json``. ``overwrite=True`` deletes whatever run the workdir held first. Yields whether a
    run of this config was there already (a resume).
    """
    prepare(workdir)
    _take_lock(workdir)
    config = json.loads(json.dumps(flatten(config), default=repr))  # as config.json will hold it
    try:
        if overwrite:
            _clear(workdir)
        _remove_temporaries(workdir)
        resumed = _check_identity(workdir, config, ignore)
        if not resumed:
            files.write_text(os.path.join(workdir, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True))
        yield resumed
    finally:
        _release_lock(workdir)


def finished(workdir):
    """The finish record of ``workdir`` (a dict), or ``None`` while its run is not finished."""
    path = os.path.join(workdir, FINISHED_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def mark_finished(workdir, outputs):
    """Records that every output in ``outputs`` (names in ``workdir``) is written: the run is complete."""
    missing = [name for name in outputs if not os.path.exists(os.path.join(workdir, name))]
    if missing:
        raise FileNotFoundError(f"Cannot mark {workdir!r} finished: {missing} are not written")
    files.write_text(os.path.join(workdir, FINISHED_FILE), json.dumps({"outputs": sorted(outputs)}, indent=2))
