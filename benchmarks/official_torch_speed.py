"""Training and inference images/s of the papers' official PyTorch models, for ``benchmarks.gpu_suite``.

Runs in its own process (torch and JAX in one process fight over GPU memory) and prints one JSON line:
``{"torch": ..., "device": ..., "rates": {"<our model name> <precision> <train|infer>": images/s}, "skipped": [...]}``.
The official code is imported at run time from ``--peer-dir`` (never copied into this project):
``lst-net-cifar/`` (Li et al. 2020, LST-Net; ``resnet20_lst_cifar`` / ``resnet56_lst_cifar``) and ``sdnet/``
(Li et al. 2022, SDNet; ``SDNet18`` and ``SDNet18_all`` with ``experiments/cifar10.yaml``, which needs
``yacs``; without it the SDNet rows are skipped with a message).

Plain ResNets: SDNet's ``Lib/models/resnet.py`` has the official CIFAR ResNet-18 (``resnet18_cifar``). No
official code has a plain ResNet-20/56 (LST-Net's file holds LST variants only), so ``resnet20`` /
``resnet56`` are the closest official code: SDNet's ``BasicBlock`` (He et al. 2016, 1x1-conv shortcuts as
ours) stacked in He et al.'s CIFAR layout (a 3x3 16-channel stem, 3 stages of n blocks at 16/32/64 channels,
global average pooling, a linear classifier), the same trainable parameter count as ours.

``--serve`` turns this into a ``benchmarks.step_server`` worker (one timed window per request), which
``benchmarks.cpu_vs_official`` drives; ``--threads`` sets ``torch.set_num_threads``.

Method, matching the suite's: SGD momentum 0.9 (Nesterov for SDNet, as its config), cross-entropy, one
device-resident batch of 32x32x3 noise; a training step is ``zero_grad, forward, backward, step``, and for
SDNet ``update_stepsize()`` first (the power iteration the official training loop runs every step);
bfloat16 is ``torch.autocast(dtype=torch.bfloat16)``. ``--warmup`` untimed steps, then ``--windows`` windows
of ``--steps`` steps closed by a device synchronize; the rate is batch / median seconds per step.

  python -m benchmarks.official_torch_speed --peer-dir /work/shared/peer --train-batch 8 --steps 1
"""

import argparse
import contextlib
import json
import pathlib
import statistics
import sys
import time
import types

LST = {"lstnet_resnet20": "resnet20_lst_cifar", "lstnet_resnet56": "resnet56_lst_cifar"}
SDNET = {"sdnet18": ("Lib.models.sdnet", "SDNet18"), "sdnet18_all": ("Lib.models.sdnet_inverse", "SDNet18_all"),
         "resnet18_cifar": ("Lib.models.resnet", "ResNet18")}
PLAIN_CIFAR = {"resnet20": 3, "resnet56": 9}  # blocks per stage, depth 6n + 2
PRECISIONS = {"float32": None, "mixed_bfloat16": "bfloat16"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer-dir", required=True, help="folder with lst-net-cifar/ and sdnet/")
    parser.add_argument("--models", default=",".join([*LST, *SDNET]))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--infer-batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--serve", action="store_true",
                        help="be a benchmarks.step_server worker on stdin/stdout (batch: --train-batch)")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in BUILDERS]
    if unknown:
        parser.error(f"--models has unknown names {unknown}; allowed: {list(BUILDERS)}")
    args.peer_dir = pathlib.Path(args.peer_dir).resolve()
    return args


def build_lst(peer_dir, name):
    sys.path.insert(0, str(peer_dir / "lst-net-cifar"))
    import resnet_lst_cifar

    return getattr(resnet_lst_cifar, LST[name])(num_classes=10), False


def build_sdnet(peer_dir, name):
    """The official SDNet (or ResNet-18) under its CIFAR-10 config; raises ImportError when yacs is missing."""
    root = peer_dir / "sdnet"
    sys.path.insert(0, str(root))
    # Lib/models/__init__.py imports torchvision for its ResNets; the SDNet modules do not need it, so the
    # package is registered without running that file.
    if "Lib.models" not in sys.modules:
        package = types.ModuleType("Lib.models")
        package.__path__ = [str(root / "Lib" / "models")]
        sys.modules["Lib.models"] = package
    import importlib

    from Lib.config import config  # needs yacs

    config.defrost()
    config.merge_from_file(str(root / "experiments" / "cifar10.yaml"))
    config.MODEL.NAME = name
    config.freeze()
    module, builder = SDNET[name]
    if module == "Lib.models.resnet" and "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except ImportError:  # resnet.py imports torchvision and never uses it; torch alone is installed
            sys.modules["torchvision"] = types.ModuleType("torchvision")
    model = getattr(importlib.import_module(module), builder)(num_classes=10, cfg=config)
    return model, name != "resnet18_cifar"  # the ResNet's update_stepsize() is a no-op


def build_plain_cifar(peer_dir, name):
    """He et al. 2016's CIFAR ResNet-(6n+2) from the official SDNet ``BasicBlock`` (none exists whole)."""
    import torch

    build_sdnet(peer_dir, "resnet18_cifar")  # imports Lib.models.resnet as the official ResNet-18 needs
    from Lib.models.resnet import BasicBlock

    layers, width = [torch.nn.Conv2d(3, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16),
                     torch.nn.ReLU(inplace=True)], 16
    for stage, planes in enumerate((16, 32, 64)):
        for block in range(PLAIN_CIFAR[name]):
            layers.append(BasicBlock(width, planes, stride=2 if stage and not block else 1))
            width = planes
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10)]
    return torch.nn.Sequential(*layers), False


BUILDERS = {**{name: build_lst for name in LST}, **{name: build_sdnet for name in SDNET},
            **{name: build_plain_cifar for name in PLAIN_CIFAR}}


def step_functions(model, refresh_step_size, args, torch, device, dtype):
    """(train step, inference step) closures of one model on one device-resident batch each."""
    model = model.to(device)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=refresh_step_size)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(args.train_batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.train_batch,), device=device)
    x_infer = torch.randn(args.infer_batch, 3, 32, 32, device=device)

    def logits(batch):
        out = model(batch)
        return out[0] if isinstance(out, tuple) else out  # SDNet returns (logits, extra)

    def train_step():
        if refresh_step_size:
            model.update_stepsize()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(logits(x), y)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.no_grad(), autocast():
            logits(x_infer)

    if refresh_step_size:
        with torch.no_grad():  # as the official build_model: a first forward sets the CSC layers' shapes
            logits(x)

    def train_mode_step():
        model.train()  # cheap (a flag per module); train and inference windows alternate in --serve
        train_step()

    def eval_mode_step():
        model.eval()
        infer_step()

    return train_mode_step, eval_mode_step


def rates(model, refresh_step_size, args, torch, device, dtype):
    """(train images/s, inference images/s) of one model."""
    train_step, infer_step = step_functions(model, refresh_step_size, args, torch, device, dtype)
    train = args.train_batch / _median_step(train_step, args, torch, device)
    infer = args.infer_batch / _median_step(infer_step, args, torch, device)
    return train, infer


def _median_step(step, args, torch, device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    windows = []
    for _ in range(args.windows):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        windows.append((time.perf_counter() - start) / args.steps)
    return statistics.median(windows)


def serve(args, torch, device):
    """A ``benchmarks.step_server`` worker for the fp32 models of ``BUILDERS`` (rows named as ours)."""
    from benchmarks import step_server

    def prepare(name):
        if name not in BUILDERS:
            raise ValueError(f"no official model for row {name!r}; known: {list(BUILDERS)}")
        torch.manual_seed(0)
        model, refresh = BUILDERS[name](args.peer_dir, name)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        train, infer = step_functions(model, refresh, args, torch, device, None)
        sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
        return step_server.Prepared(params, {"train": train, "infer": infer}, {"train": sync, "infer": sync})

    step_server.serve(prepare, warmup=args.warmup)


def main(argv=None):
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    if args.serve:
        return serve(args, torch, device)
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if device.type == "cuda"
              else "cpu", "rates": {}, "skipped": []}
    for name in args.models:
        for precision in [p for p in args.precisions.split(",") if p]:
            torch.manual_seed(0)
            try:
                model, refresh = BUILDERS[name](args.peer_dir, name)
            except ImportError as error:
                result["skipped"].append(f"{name}: cannot import the official code ({error})")
                break
            dtype = getattr(torch, PRECISIONS[precision]) if PRECISIONS[precision] else None
            train, infer = rates(model, refresh, args, torch, device, dtype)
            result["rates"][f"{name} {precision} train"] = train
            result["rates"][f"{name} {precision} infer"] = infer
            print(f"official {name} {precision}: train {train:,.1f}, inference {infer:,.1f} images/s",
                  file=sys.stderr, flush=True)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
