"""Pre-training: one function for the notebook cell, the CLI and every ``torchrun`` process.

    from simipu.config import load_config
    from simipu.train import pretrain, launch
    summary = pretrain(load_config("tiny", ["train.max_steps=50"]))     # in-process, e.g. a notebook cell
    launch(load_config("kitti", data__root="/data/kitti"), nproc=8)      # torchrun from a cell, streamed

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same ``pretrain`` runs DDP: a DistributedSampler shards the
frames, SyncBN replaces BatchNorm in the image backbone on CUDA, rank 0 alone logs and writes checkpoints.
Optimisation is the paper's hybrid (appendix D): SGD for the image branch and the projection heads,
AdamW for the point branch, exponential decay of every learning rate once per epoch.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .checkpoint import (CheckpointError, check_resumable, list_checkpoints, load_latest, load_model_state,
                         nonfinite_keys, remove_stale_tmp, save_checkpoint)
from .config import Config, load_config
from .errors import ConfigError
from .model import SimIPU
from .outputs import hold_run_lock
from .pipeline import PretrainDataset, collate
from .provenance import source_commit

METRICS = ("loss", "loss_intra", "loss_inter", "intra_top1", "intra_top5", "inter_top1", "inter_top5",
           "match_dist", "match_lt_0.1", "match_lt_0.5", "inter_valid")


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: the run saved a checkpoint at the step boundary and stopped (``--resume`` goes on)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


@contextlib.contextmanager
def stop_signals():
    """While training, SIGINT (Ctrl-C, a notebook's stop button) and SIGTERM (cluster pre-emption) only set
    ``stop["signum"]``; the loop saves a checkpoint at the next step boundary and stops. A second signal
    acts as usual (the handler puts the previous one back). Outside the main thread nothing is installed."""
    stop = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        stop["signum"] = signum
        signal.signal(signum, previous[signum])
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


@contextlib.contextmanager
def _workers_stopped(batches):
    """Yield a DataLoader iterator; on leaving, by any path, stop its workers now.

    Left to garbage collection, the workers of a run that stopped with an exception live as long as its
    traceback (it holds the iterator), and since they ignore SIGTERM (``_worker_init``) the interpreter's exit,
    which sends them SIGTERM and joins them, would wait for ever: a script or a test suite that catches a
    ``DataError`` or ``TrainingDiverged`` would never exit."""
    try:
        yield batches
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)   # multi-process iterators only; idempotent
        if shutdown is not None:
            shutdown()


def _worker_init(worker_id: int) -> None:
    """Data workers leave SIGINT/SIGTERM to the main process, which stops them after its checkpoint."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _SkipSampler(torch.utils.data.Sampler):
    """Yields the wrapped sampler's indices from position ``skip`` on (exact mid-epoch resume)."""

    def __init__(self, sampler, skip: int = 0):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        it = iter(self.sampler)
        for _ in range(self.skip):
            next(it)
        yield from it

    def __len__(self):
        return len(self.sampler) - self.skip


def _device(spec: str) -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={spec} but this machine has no usable CUDA GPU "
                          f"(torch.cuda.is_available() is False); use train.device=auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"train.device={spec} but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def _amp_dtype(precision: str, device: torch.device):
    """Autocast dtype, or None for plain fp32 (always on CPU unless asked)."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16


def _optim_settings(cfg: Config) -> list[dict]:
    """Hyper-parameters of the three optimisers (image SGD, point AdamW, heads SGD) from ``cfg.optim``."""
    o = cfg.optim
    return [dict(lr=o.image_lr, momentum=o.image_momentum, weight_decay=o.image_weight_decay),
            dict(lr=o.point_lr, betas=tuple(o.point_betas), weight_decay=o.point_weight_decay),
            dict(lr=o.head_lr, momentum=o.head_momentum, weight_decay=o.head_weight_decay)]


def build_optimizers(model: SimIPU, cfg: Config) -> list[torch.optim.Optimizer]:
    """Hybrid optimisers of the paper's appendix D: SGD (image), AdamW (points), SGD (heads)."""
    groups, (image, point, heads) = model.param_groups(), _optim_settings(cfg)
    return [torch.optim.SGD(groups["image"], **image), torch.optim.AdamW(groups["point"], **point),
            torch.optim.SGD(groups["heads"], **heads)]


def dist_backend(device: torch.device, requested: str = "auto") -> str:
    """The process-group backend: NCCL on CUDA and gloo on the CPU unless ``requested`` says otherwise.
    NCCL needs one GPU per process; gloo also runs CUDA tensors (all-reduce, broadcast: what DDP needs) so
    several processes can share one GPU, but it has no CUDA all-gather, so SyncBatchNorm must be off there."""
    if requested != "auto":
        return requested
    return "nccl" if device.type == "cuda" else "gloo"


def _setup_distributed(device: torch.device, backend: str = "auto") -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend=dist_backend(device, backend))
        if device.type == "cuda":
            torch.cuda.set_device(device)
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_threads(num_workers: int, cores: int | None = None) -> int:
    """``train.threads=0``: torch's default, capped so that the data workers keep a core each.

    On a 2-core machine with one data worker, 1 training thread is as fast as 2 (124.7 s vs 123.7 s for the
    README's main job, measured on a quiet machine) and uses a third less CPU time. When the threads
    outnumber the free cores, torch's threads wait for one another and a step can take several times longer.
    """
    cores = cores or usable_cores()
    return max(1, min(torch.get_num_threads(), cores - num_workers))


def pretrain(cfg: Config | str = "tiny", *, resume: bool = False, progress: bool = True,
             overrides=None, allow_config_change: bool = False) -> dict:
    """Run SimIPU pre-training; returns the run summary (also written to ``OUT/summary.json``).

    Args:
        cfg: a :class:`Config` or a preset name / YAML path.
        resume: continue exactly from the newest readable checkpoint in ``cfg.train.out``.
        progress: show a progress bar (loss, accuracies, samples/s) on rank 0.
        overrides: ``key=value`` strings applied when ``cfg`` is a name.
        allow_config_change: on resume, accept settings that differ from the checkpoint's (other than
            ``checkpoint.RUN_KEYS``) and use the new ones; without it such a difference is an error.

    Rank 0 holds ``OUT/.lock`` while it runs (a second run on the same folder is refused) and removes
    ``*.tmp`` files a killed run left. SIGINT/SIGTERM save a checkpoint at the next step boundary, then
    :class:`TrainingInterrupted` is raised.
    """
    if not isinstance(cfg, Config):
        cfg = load_config(cfg, overrides)
    threads = torch.get_num_threads()
    rank0 = int(os.environ.get("RANK", "0")) == 0
    try:  # a notebook that calls pretrain keeps its own thread count afterwards
        with hold_run_lock(cfg.train.out) if rank0 else contextlib.nullcontext(), stop_signals() as stop:
            if rank0:
                remove_stale_tmp(cfg.train.out)  # safe: this process holds the folder's lock
            return _pretrain(cfg, resume, progress, allow_config_change, stop)
    finally:
        torch.set_num_threads(threads)


def _pretrain(cfg: Config, resume: bool, progress: bool, allow_config_change: bool, stop: dict) -> dict:
    t = cfg.train
    device = _device(t.device)
    rank, world = _setup_distributed(device, t.dist_backend)
    if world > 1 and device.type == "cuda" and dist_backend(device, t.dist_backend) == "gloo" and cfg.model.sync_bn:
        raise ConfigError("train.dist_backend=gloo on CUDA has no all-gather for SyncBatchNorm: "
                          "set model.sync_bn=false (per-process BatchNorm statistics) or use NCCL")
    torch.set_num_threads(t.threads or auto_threads(cfg.data.num_workers))
    torch.manual_seed(t.seed + rank)
    np.random.seed(t.seed + rank)
    out = Path(t.out)
    main_proc = rank == 0

    dataset = PretrainDataset(cfg.data)
    if main_proc:
        print(dataset.describe_points(), flush=True)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=t.seed,
                                 drop_last=True)
    steps_per_epoch = len(sampler) // t.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{cfg.data.root}: {len(dataset)} frames give no full batch of "
                         f"{t.batch_size} per process (world size {world})")
    total_steps = t.epochs * steps_per_epoch
    if t.max_steps:
        if t.max_steps > total_steps and rank == 0:
            warnings.warn(f"train.max_steps={t.max_steps} is more than train.epochs={t.epochs} × "
                          f"{steps_per_epoch} steps per epoch: stopping after {total_steps} steps "
                          f"(raise train.epochs to train longer)", stacklevel=2)
        total_steps = min(total_steps, t.max_steps)

    model = SimIPU(cfg.model).to(device)
    if world > 1 and device.type == "cuda" and cfg.model.sync_bn:
        model.image_encoder = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.image_encoder)
    optimizers = build_optimizers(model, cfg)
    schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=cfg.optim.lr_decay) for o in optimizers]
    amp_dtype = _amp_dtype(t.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    step, history = 0, []
    if resume:
        found = load_latest(out)
        if found is None:
            raise CheckpointError(f"--resume: no readable checkpoint in {out / 'checkpoints'}")
        path, state = found
        check_resumable(state, path, cfg.to_dict(), len(optimizers), allow_config_change)
        load_model_state(model, state["model"], state["config"].get("model"), cfg.to_dict()["model"], path)
        try:
            for o, s in zip(optimizers, state["optimizers"]):
                o.load_state_dict(s)
            for sch, s in zip(schedulers, state["schedulers"]):
                sch.load_state_dict(s)
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["torch_rng"])
        except (ValueError, RuntimeError, KeyError, TypeError, IndexError) as e:
            raise CheckpointError(f"{path}: cannot restore the optimiser and random state "
                                  f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        if allow_config_change:  # the new optimiser settings, at the learning rate's current decay
            _apply_optim_config(optimizers, schedulers, cfg)
        step, history = state["step"], state["history"]
        if main_proc:
            print(f"resumed from {path} at step {step}", flush=True)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.model.lambda_intra == 0 or cfg.model.mu_inter == 0)

    writer = figures = None
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        from .tracking import open_tracker
        from .viz.training import HeldOutFigures
        writer = open_tracker(cfg, out)  # TensorBoard, and W&B with train.logger=wandb
        figures = HeldOutFigures(cfg) if t.image_every else None
    commit = source_commit() if main_proc else None

    def checkpoint():
        if not main_proc:
            return
        state = dict(model=model.state_dict(), optimizers=[o.state_dict() for o in optimizers],
                     schedulers=[s.state_dict() for s in schedulers], scaler=scaler.state_dict(),
                     torch_rng=torch.get_rng_state(), step=step, history=history, config=cfg.to_dict(),
                     commit=commit)
        bad = nonfinite_keys(state)
        if bad:  # a finite loss can still give NaN/inf weights (an overflowing update): keep the good files
            kept = list_checkpoints(out)
            raise TrainingDiverged(
                f"step {step}: {len(bad)} weight or optimiser tensors became NaN or inf after the update "
                f"(e.g. {', '.join(bad[:3])}); not saving them. Try lower learning rates or grad clipping. "
                + (f"The last good checkpoint is kept: {kept[-1]}" if kept else "No checkpoint was written yet."))
        save_checkpoint(state, out, step, t.keep_last)

    bar = tqdm(total=total_steps, initial=step, desc=f"pretrain {cfg.name}", disable=not (progress and main_proc),
               dynamic_ncols=True)
    t_start, samples_seen = time.perf_counter(), 0
    model.train()
    while step < total_steps:
        epoch, skip = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=t.batch_size, sampler=_SkipSampler(sampler, skip * t.batch_size),
                            num_workers=cfg.data.num_workers, collate_fn=collate, drop_last=True,
                            pin_memory=device.type == "cuda", persistent_workers=False,
                            worker_init_fn=_worker_init)
        with _workers_stopped(iter(loader)) as batches:
            for batch in batches:
                if _stop_requested(stop, world, device):  # SIGINT/SIGTERM: save at this step boundary, stop
                    if main_proc and not any(p.name == f"step_{step:08d}.pt" for p in list_checkpoints(out)):
                        checkpoint()
                    bar.close()
                    name = signal.Signals(stop["signum"] or signal.SIGTERM).name
                    raise TrainingInterrupted(f"stopped by {name} after step {step}; checkpoint "
                                              f"{out / 'checkpoints' / f'step_{step:08d}.pt'}; continue with --resume",
                                              stop["signum"] or signal.SIGTERM)
                t0 = time.perf_counter()
                batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    result = ddp_model(batch)
                loss = result["loss"]
                finite_here = torch.isfinite(loss.detach())
                finite = finite_here.to(torch.int32)
                if world > 1:  # all ranks stop together; otherwise the others would wait forever in backward
                    dist.all_reduce(finite, op=dist.ReduceOp.MIN)
                if not bool(finite):
                    kept = list_checkpoints(out)
                    where = (f"loss is finite on rank {rank} but not on another rank" if finite_here else
                             f"loss is {loss.item()} (intra {result['loss_intra'].item()}, "
                             f"inter {result['loss_inter'].item()})")
                    raise TrainingDiverged(
                        f"step {step + 1}: {where}. Try lower learning rates or train.precision=fp32. "
                        + (f"The last good checkpoint is kept: {kept[-1]}" if kept else "No checkpoint was written yet."))
                for o in optimizers:
                    o.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.optim.grad_clip:
                    for o in optimizers:
                        scaler.unscale_(o)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                for o in optimizers:
                    scaler.step(o)
                scaler.update()
                step += 1
                n = batch["points_a"].shape[0] * world
                samples_seen += n
                row = reduce_metrics(result, world)
                row.update(step=step, epoch=epoch, samples_per_s=n / (time.perf_counter() - t0))
                history.append(row)
                if main_proc:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", intra1=f"{row.get('intra_top1', 0):.2f}",
                                    inter1=f"{row.get('inter_top1', 0):.2f}", sps=f"{row['samples_per_s']:.1f}")
                    if step % t.log_every == 0 or step == total_steps:
                        _log_scalars(writer, row, optimizers, step)
                    if figures is not None and (step % t.image_every == 0 or step == total_steps):
                        figures.log(writer, model, step)
                epoch_done = step % steps_per_epoch == 0
                if epoch_done:
                    for s in schedulers:
                        s.step()
                if (step % t.ckpt_every == 0 if t.ckpt_every else epoch_done) or step == total_steps:
                    checkpoint()
                if step >= total_steps:
                    break
    bar.close()
    wall = time.perf_counter() - t_start
    summary = _summary(cfg, history, step, wall, samples_seen, device, world)
    fingerprint = parameter_sha256(model)
    if world > 1:  # DDP must leave every rank with the same weights: record it to check
        hashes = [None] * world
        dist.all_gather_object(hashes, fingerprint)
        summary["rank_param_sha256"] = hashes
    else:
        summary["rank_param_sha256"] = [fingerprint]
    if main_proc:
        log_hparams(writer, cfg, summary)
        writer.close()
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        _finish_run(out, history)
    if dist.is_initialized():
        dist.barrier()
    return summary


def _stop_requested(stop: dict, world: int, device: torch.device) -> bool:
    """Whether a stop signal arrived, on any rank (so every rank stops at the same step)."""
    flag = stop["signum"] is not None
    if world > 1:
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item())
    return flag


def _apply_optim_config(optimizers, schedulers, cfg: Config) -> None:
    """Set each optimiser's hyper-parameters from ``cfg.optim`` after a resume with changed settings; the
    learning rate is the new base rate times ``lr_decay`` per epoch already done."""
    for opt, sch, new in zip(optimizers, schedulers, _optim_settings(cfg)):
        sch.gamma = cfg.optim.lr_decay
        sch.base_lrs = [new["lr"]] * len(opt.param_groups)
        for group in opt.param_groups:
            group.update(new, lr=new["lr"] * cfg.optim.lr_decay ** sch.last_epoch)
        sch._last_lr = [g["lr"] for g in opt.param_groups]


def reduce_metrics(result: dict, world: int) -> dict[str, float]:
    """The step's metrics over all ranks: means, except ``inter_valid`` (points) which is summed.

    One all-reduce of a small vector; with ``world == 1`` the local values.
    """
    keys = [k for k in METRICS if k in result]
    values = torch.stack([result[k].detach().float().reshape(()) for k in keys])
    if world > 1:
        dist.all_reduce(values)  # sum over ranks
        values = torch.where(torch.tensor([k == "inter_valid" for k in keys], device=values.device),
                             values, values / world)
    return dict(zip(keys, values.tolist()))


def parameter_sha256(model: torch.nn.Module) -> str:
    """A fingerprint of all parameters: equal strings mean bit-identical weights."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _log_scalars(writer, row: dict, optimizers, step: int) -> None:
    for k, v in row.items():
        if k not in ("step", "epoch"):
            writer.add_scalar(f"train/{k}", v, step)
    for name, o in zip(("image", "point", "heads"), optimizers):
        writer.add_scalar(f"lr/{name}", o.param_groups[0]["lr"], step)


def log_hparams(writer, cfg: Config, summary: dict) -> None:
    """The run's configuration (flattened, ``section.key``) and final metrics in TensorBoard's HParams tab,
    so runs under one ``--logdir`` can be compared side by side."""
    def flat(tree, prefix=""):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield prefix + k, v if isinstance(v, (bool, int, float, str)) else str(v)
    metrics = {f"final/{k}": v for k, v in summary["last10_mean"].items()}
    metrics["final/samples_per_s"] = summary["samples_per_s"] or 0.0
    writer.add_hparams(dict(flat(cfg.to_dict())), metrics, run_name=".")


def _summary(cfg, history, step, wall, samples_seen, device, world) -> dict:
    last = history[-min(len(history), 10):] if history else []
    mean = {k: float(np.mean([r[k] for r in last])) for k in METRICS if last and k in last[0]}
    return dict(config=cfg.name, steps=step, wall_seconds=round(wall, 2),
                samples_per_s=round(samples_seen / wall, 3) if wall > 0 else None,
                device=str(device), world_size=world, last10_mean=mean,
                first=history[0] if history else None, out=str(cfg.train.out))


def _finish_run(out: Path, history: list[dict]) -> None:
    """Loss-curve PNG and the exported backbone beside the checkpoints."""
    from .export import export_checkpoint
    from .viz.curves import plot_training_curves
    plot_training_curves(history, out / "loss_curve.png")
    ckpts = list_checkpoints(out)
    if ckpts:
        export_checkpoint(ckpts[-1], "torchvision", out / "backbone_torchvision.pth")


def launch(cfg: Config | str, nproc: int = 2, *, resume: bool = False, nnodes: int = 1,
           extra_args=(), stream=sys.stdout) -> int:
    """Run :func:`pretrain` under ``torchrun`` with ``nproc`` processes; stream its output (e.g. to a cell).

    Returns torchrun's exit code; raises ``RuntimeError`` when it is not 0.
    """
    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--nnodes={nnodes}", *extra_args, "-m", "simipu", "pretrain", "--config", str(cfg_path)]
        if nnodes == 1:
            cmd[3:3] = ["--standalone"]
        if resume:
            cmd.append("--resume")
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            stream.write(line)
            stream.flush()
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"torchrun exited with code {code}: {' '.join(cmd)}")
    return code
