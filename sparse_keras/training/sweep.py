r"""The structured-sparsity paper's efficient frontier: the base architecture trained for every alpha of a grid.

:func:`run` is what ``python -m train.sweep --config=configs/ssr/<name>.py --workdir=runs/frontier`` calls.

For each variant in ``config.sweep.variants`` (``"plain"``: Omega_1 and/or Omega_2 as named by
``config.sweep.regularizers``; ``"omega3"``: the same weighted by each layer's cost, eq. 34, see
:mod:`sparse_keras.sparsity.complexity`) and each ``alpha`` in ``config.sweep.alphas``, an experiment
(:func:`sparse_keras.training.experiment.run`, method ``ssr``) trains with strength alpha, thresholds at ``config.method.tau``,
fine-tunes with the masks (``config.method.finetune_epochs``), shrinks to the learned architecture
(vanished residual layers are dropped by :func:`sparse_keras.shrinking.shrink`), evaluates the shrunk model
and exports it (``model.keras`` + ``saved_model/``) into its own sub-workdir ``<variant>/alpha_<a>/``, so
every point resumes on its own and a finished point is not trained again.

Then, unless turned off: the dense base architecture (``dense/``, method none, as many epochs in all) and,
for every learned point, the base with every width scaled so that its multiply-adds match those of that
point's exported model
(``uniform_<variant>_<a>/``, trained the same way). With ``config.sweep.retrain``, every learned
architecture is also trained again from scratch (``retrained_<variant>_<a>/``: the shrunk model with fresh
weights, as many epochs as the baselines): the comparison of architectures alone, without the advantage or
handicap of the weights the regularized run left. The latency of every exported model is measured in this
one process, side by side (:func:`sparse_keras.benchmark.latency`, TensorFlow runtime).

With ``config.sweep.seeds`` (e.g. ``(0, 1, 2)``) all of the above is repeated for every seed, each in
``seed_<s>/``, and the outputs below gather every seed's points (a ``seed`` column): one run per seed is the
only way to tell an architecture's advantage from the spread between runs.

Writes to ``workdir``: ``frontier.{md,csv,json}`` (one row per point), ``frontier.png`` (accuracy vs
multiply-adds and vs latency), ``comparison.md`` (every learned architecture against its uniformly thinned
twin of the same multiply-adds: accuracy gain, measured speed ratio, per seed and averaged;
:func:`sparse_keras.reports.frontier.compare_with_uniform`), ``widths.png`` (the structured-sparsity paper Fig. 1) and ``sizes.png``
(Fig. 3), per seed in ``seed_<s>/`` when there are several.
"""

import copy
import os
import shutil

import keras

from sparse_keras import analysis, benchmark, models
from sparse_keras import data as data_lib
from sparse_keras.models import keras_file
from sparse_keras.reports import frontier, plots
from sparse_keras.training import experiment
from sparse_keras.training import workdir as workdir_lib
from sparse_keras.utils import files

VARIANTS = ("plain", "omega3")
REGULARIZERS = ("kernel", "size", "both")
MIN_WIDTH_MULTIPLIER = 1e-3  # every layer 1 kernel wide: the thinnest uniform baseline
LABELS = {"kernel": "Omega_1", "size": "Omega_2", "both": "Omega_1+Omega_2"}


def check_config(config):
    """The sweep's own keys (``config.sweep``); the rest is checked by :func:`.experiment.check_config`."""

    sweep = config.get("sweep")
    if sweep is None:
        raise ValueError("config.sweep is missing; see configs/ssr/base.py for its keys")
    alphas = tuple(sweep.alphas)
    if not alphas or any(isinstance(a, bool) or not isinstance(a, (int, float)) or not a > 0 for a in alphas):
        raise ValueError(f"config.sweep.alphas must be a non-empty list of positive numbers, got {sweep.alphas!r}")
    if sweep.regularizers not in REGULARIZERS:
        raise ValueError(f"config.sweep.regularizers must be one of {REGULARIZERS}, got {sweep.regularizers!r}")
    bad = [v for v in sweep.variants if v not in VARIANTS]
    if bad or not sweep.variants:
        raise ValueError(f"config.sweep.variants must be a non-empty subset of {VARIANTS}, got {sweep.variants!r}")
    if not (isinstance(sweep.latency_rounds, int) and sweep.latency_rounds >= 1):
        raise ValueError(f"config.sweep.latency_rounds must be a positive integer, got {sweep.latency_rounds!r}")
    batches = tuple(sweep.latency_batch_sizes)
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"config.sweep.latency_batch_sizes must be positive integers, got {sweep.latency_batch_sizes!r}")
    seeds = tuple(sweep.get("seeds", ()))
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds) or len(set(seeds)) < len(seeds):
        raise ValueError(f"config.sweep.seeds must be distinct non-negative integers, got {sweep.get('seeds')!r}")
    if not isinstance(sweep.get("retrain", False), bool):
        raise ValueError(f"config.sweep.retrain must be True or False, got {sweep.get('retrain')!r}")
    if config.method.get("name") != "ssr":
        raise ValueError(f"config.method.name must be 'ssr' for a sweep, got {config.method.get('name')!r}")
    for alpha in alphas[:1]:
        experiment.check_config(point_config(config, "plain", alpha))


def point_config(config, variant, alpha):
    """The experiment config of one point: method ssr with strength ``alpha`` on the chosen regularizers."""
    point = copy.deepcopy(config)
    with point.unlocked():
        del point["sweep"]
        point.method.kernel_strength = float(alpha) if config.sweep.regularizers in ("kernel", "both") else 0.0
        point.method.size_strength = float(alpha) if config.sweep.regularizers in ("size", "both") else 0.0
        point.shrink = True
    return point


def baseline_config(config, width_multiplier=None):
    """The dense base (``width_multiplier=None``) or a uniformly thinned one, trained as long as a point."""
    point = copy.deepcopy(config)
    with point.unlocked():
        del point["sweep"]
        epochs = config.epochs + config.method.finetune_epochs
        point.method = type(point.method)({"name": "none"})
        point.epochs = epochs
        point.shrink = False
        if width_multiplier is not None:
            point.model.kwargs.width_multiplier = width_multiplier * config.model.kwargs.get("width_multiplier", 1.0)
    return point


def retrain_config(config, architecture_path):
    """The baselines' recipe on the architecture saved at ``architecture_path``, from fresh weights."""
    point = baseline_config(config)
    with point.unlocked():
        point.model.name = "keras_file"
        point.model.kwargs = type(point.model)({"path": architecture_path, "reinitialize": True})
    return point


def _write_architecture(point_dir, base):
    """``<point_dir>/architecture_init.keras``: the point's exported model with ``base``'s initializers."""
    path = os.path.join(point_dir, "architecture_init.keras")
    if not os.path.exists(path):
        with files.atomic_path(path) as tmp:
            keras_file.reinitialized(_exported(point_dir), like=base).save(tmp)
    return path


def _train_once(config, workdir, weighted=False):
    """``experiment.run`` (which leaves a finished run in ``workdir`` alone); returns its report dict."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.method.complexity_weighted = bool(weighted)  # Omega_3 in the ssr method of .stages
    return experiment.run(config, workdir)


def _point_name(alpha):
    return f"alpha_{alpha:.3g}"


def _conv_depth(model):
    return sum(isinstance(layer, keras.layers.Conv2D) and not layer.name.startswith("shortcut") for layer in model.layers)


def _exported(workdir):
    return keras.saving.load_model(os.path.join(workdir, "model.keras"), compile=False)


def _costs(workdir):
    """Parameters, multiply-adds and conv depth of the model exported to ``workdir``."""
    model = _exported(workdir)
    return {"params": analysis.count_params(model), "deployed_macs": analysis.report(model, tau=0.0).base_macs,
            "depth": _conv_depth(model)}


def _learned_architecture(workdir, tau, scheme):
    """Eq. 10 multiply-adds and per-layer widths and sizes of the trained (masked) model of a point.

    Read from ``dense_with_zeros.keras`` with the nested ``scheme`` named explicitly: after fine-tuning the
    regularizers are detached, so the run's own report no longer knows which groups are half-rings and
    counts every surviving kernel at full size.
    """
    model = keras.saving.load_model(os.path.join(workdir, "dense_with_zeros.keras"), compile=False)
    report = analysis.report(model, tau=tau, scheme=scheme)
    layers = [{"layer": r.layer, "base_width": r.base_width, "width": r.width, "sizes": {str(k): v for k, v in r.sizes.items()}}
              for r in report.layers[:-1]]  # the classifier is never regularized
    return report.macs, layers


def _latencies(workdirs, input_shape, batches, repeats, rounds):
    """``{workdir: {batch: ms}}`` for the exported model of each workdir, timed side by side.

    Every model is timed ``rounds`` times, round-robin, and the fastest round is kept, so that load from
    other processes on a shared machine hurts no point more than another.
    """
    exported = {d: _exported(d) for d in workdirs}
    best = {d: {b: float("inf") for b in batches} for d in workdirs}
    for _ in range(rounds):
        for d, model in exported.items():
            seconds = benchmark.latency(model, input_shape, batch_sizes=batches, runtimes=("tf",), repeats=repeats)
            for b in batches:
                best[d][b] = min(best[d][b], 1e3 * seconds["tf", b])
    return best


def run(config, workdir, overwrite=False):
    """The whole sweep; returns the list of :class:`sparse_keras.reports.frontier.FrontierPoint`.

    Each point is its own run (:func:`.experiment.run`): finished points are reused, a point whose config
    changed is refused; ``overwrite`` deletes the whole sweep's workdir first.
    """
    check_config(config)

    if overwrite and os.path.isdir(workdir):
        shutil.rmtree(workdir)
    workdir_lib.prepare(workdir)
    sweep = config.sweep
    seeds = tuple(sweep.get("seeds", ()))
    if seeds:
        rows = []
        for seed in seeds:
            seeded = copy.deepcopy(config)
            with seeded.unlocked():
                seeded.seed = seed
            seed_dir = workdir_lib.prepare(os.path.join(workdir, f"seed_{seed}"))
            print(f"##### seed {seed} -> {seed_dir}")
            rows += [dict(row, seed=seed) for row in _train_points(seeded, seed_dir)]
    else:
        rows = _train_points(config, workdir)

    # Every exported model of every seed is timed in this one process, round-robin, so that the machine's
    # drift hits all alike.
    print(f"=== timing {len(rows)} exported models, {sweep.latency_rounds} rounds")
    info = data_lib.dataset_info(config.data.name)
    latency = _latencies([r["workdir"] for r in rows], info.input_shape, tuple(sweep.latency_batch_sizes),
                         sweep.latency_repeats, sweep.latency_rounds)
    points = [frontier.FrontierPoint(latency_ms=latency[r["workdir"]], **r) for r in rows]

    title = f"{config.model.name} on {config.data.name}, tau = {config.method.tau:g}"
    frontier.write_table(points, os.path.join(workdir, "frontier"))
    frontier.write_comparison(points, os.path.join(workdir, "comparison.md"))
    plots.plot_frontier(points, os.path.join(workdir, "frontier.png"), title=title)
    for seed in seeds or (None,):  # the family plots of each seed's architectures, beside its runs
        family = [p for p in points if p.seed == seed]
        family_dir = workdir if seed is None else os.path.join(workdir, f"seed_{seed}")
        plots.plot_width_family(family, os.path.join(family_dir, "widths.png"), title=f"Learned widths: {title}")
        try:
            plots.plot_size_family(family, os.path.join(family_dir, "sizes.png"),
                                      title=f"Learned kernel sizes: {title}")
        except ValueError as error:  # every kernel of every point vanished: nothing to histogram
            print(f"no sizes.png: {error}")
    files.write_text(os.path.join(workdir, "sweep_config.json"), config.to_json_best_effort(indent=2))
    print(open(os.path.join(workdir, "frontier.md")).read())
    if os.path.exists(os.path.join(workdir, "comparison.md")):
        print(open(os.path.join(workdir, "comparison.md")).read())
    return points


def _train_points(config, workdir):
    """Trains (or finds finished) every point of one seed under ``workdir``; returns the FrontierPoint
    arguments of each, all but the latency."""
    sweep = config.sweep
    info = data_lib.dataset_info(config.data.name)
    label_of = {"plain": LABELS[sweep.regularizers], "omega3": f"Omega_3 ({LABELS[sweep.regularizers]})"}
    scheme = config.method.size_scheme if sweep.regularizers in ("size", "both") else None
    rows = []

    for variant in sweep.variants:
        for alpha in sweep.alphas:
            point_dir = os.path.join(workdir, variant, _point_name(alpha))
            print(f"=== {variant}, alpha = {alpha:g} -> {point_dir}")
            summary = _train_once(point_config(config, variant, alpha), point_dir, weighted=variant == "omega3")
            macs, layers = _learned_architecture(point_dir, config.method.tau, scheme)
            accuracy = summary.get("shrunk", {}).get("test_accuracy", summary["test_accuracy"])
            rows.append(dict(kind="learned", label=label_of[variant], alpha=float(alpha), accuracy=accuracy, macs=macs,
                             layers=layers, workdir=point_dir, **_costs(point_dir)))

    def build(multiplier):
        kwargs = dict(config.model.kwargs)
        kwargs["width_multiplier"] = multiplier * kwargs.get("width_multiplier", 1.0)
        return models.get(config.model.name, num_classes=info.num_classes, input_shape=info.input_shape, **kwargs)

    cache = {}

    def macs_of(multiplier):
        if multiplier not in cache:
            cache[multiplier] = analysis.report(build(multiplier), tau=0.0).base_macs
        return cache[multiplier]

    if sweep.dense_baseline:
        dense_dir = os.path.join(workdir, "dense")
        print(f"=== dense base -> {dense_dir}")
        summary = _train_once(baseline_config(config), dense_dir)
        rows.append(dict(kind="dense", label="dense base", alpha=None, accuracy=summary["test_accuracy"],
                         macs=summary["base_macs"], width_multiplier=1.0, workdir=dense_dir, **_costs(dense_dir)))
    if sweep.uniform_baselines:
        for learned in [r for r in rows if r["kind"] == "learned"]:
            # Matched to what the exported model really computes: dead-end layers removed, mixed sizes as deployed.
            target = learned["deployed_macs"]
            if not macs_of(MIN_WIDTH_MULTIPLIER) <= target < macs_of(1.0):
                print(f"skipping the uniform baseline of {learned['label']}, alpha {learned['alpha']:g}: its exported "
                      f"model's multiply-adds {target:,} are not between the thinnest and the full base's")
                continue
            multiplier = frontier.match_width_multiplier(macs_of, target, low=MIN_WIDTH_MULTIPLIER, iterations=16)
            variant = "omega3" if learned["label"].startswith("Omega_3") else "plain"
            uniform_dir = os.path.join(workdir, f"uniform_{variant}_{_point_name(learned['alpha'])}")
            print(f"=== uniform thinning x{multiplier:.3f} ({macs_of(multiplier):,} multiply-adds) -> {uniform_dir}")
            summary = _train_once(baseline_config(config, multiplier), uniform_dir)
            rows.append(dict(kind="uniform", label="uniformly thinned", alpha=learned["alpha"],
                             accuracy=summary["test_accuracy"], macs=summary["base_macs"], width_multiplier=multiplier,
                             workdir=uniform_dir, twin_of=learned["label"], **_costs(uniform_dir)))

    if sweep.get("retrain", False):
        for learned in [r for r in rows if r["kind"] == "learned"]:
            variant = "omega3" if learned["label"].startswith("Omega_3") else "plain"
            path = _write_architecture(learned["workdir"], build(1.0))
            retrain_dir = os.path.join(workdir, f"retrained_{variant}_{_point_name(learned['alpha'])}")
            print(f"=== the architecture of {learned['label']}, alpha {learned['alpha']:g}, from scratch -> {retrain_dir}")
            summary = _train_once(retrain_config(config, path), retrain_dir)
            costs = _costs(retrain_dir)
            rows.append(dict(kind="learned", label=f"{learned['label']}{frontier.RETRAINED}", alpha=learned["alpha"],
                             accuracy=summary["test_accuracy"], macs=costs["deployed_macs"], workdir=retrain_dir,
                             **costs))
    return rows

