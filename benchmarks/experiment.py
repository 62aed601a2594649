"""Does SimIPU pre-training help the image encoder? A resumable experiment (paper Table 3, Fig. 5, Table 5).

Run (each part only does what is missing; runs are cached under ``--cache``, outside the repository)::

    python benchmarks/experiment.py --list                        # every planned run, done or not
    nice -n 10 python benchmarks/experiment.py --parts pretrain,frozen
    python benchmarks/experiment.py --parts finetune
    python benchmarks/experiment.py --parts report                # results/experiment.md + figures
    python benchmarks/experiment.py --quick --cache /tmp/c        # the whole path in under a minute

Runs (they execute encoder by encoder: the main comparison, then the other dose points cheapest first, then
the ablations; each pre-training is followed by its probes):

1. ``data``: synthetic KITTI-format frames (``simipu.synth.generate``, ``fov_only``), 200 train + 50 val;
   ``subsets/train_NNN/`` is a root (``training/`` linked) whose train split is the first NNN train frames.
   val is used only to evaluate probes and signals.
2. ``pretrain``: SimIPU, ``tiny`` preset (ResNet-18, 4096 points, batch 2), single-threaded, seed 0. The
   dose-response points vary distinct frames and steps together, 8× each: (25 frames, 500 steps),
   (50, 1000), (100, 2000), (200, 4000) — always 40 epochs, so the per-epoch lr decay ends at the same
   value. The largest is the main comparison. Table 5 ablations (greedy matching, λ = 0, μ = 0) at (100, 2000).
   Each keeps 8 checkpoints along the way (for later diagnostics).
3. ``frozen``: :func:`simipu.frozen_probe.run_frozen_probe` of every encoder with seeds 0-7 (500 decoder steps,
   AdamW lr 1e-3, batch 4, 384×128). "Scratch" is the image encoder SimIPU pre-training starts from (its
   seed-0 initialisation), so scratch vs SimIPU isolates what pre-training changed.
4. ``finetune``: :func:`simipu.depth.run_depth_probe` (encoder and decoder trained, 200 steps, lr 2e-4) of
   scratch and the main SimIPU encoder, seeds 0-7.
5. ``signals``: :func:`simipu.signals.pretraining_signals` of every kept checkpoint (and the init) of every
   pre-training, on 16 val frames: both losses, top-1 accuracies and the share of wrong positive pairs
   (from the generator's instance ground truth); also written to TensorBoard under ``cache/<key>/signals`` and
   to the pre-training's ``cache/<key>/summary.json`` (``heldout_signals``).
6. ``report``: ``results/experiment.md``, ``results/fig5_dose_response.png`` and
   ``results/pretrain_signals.png`` from whatever JSON exists.

All probes feed images normalised as in pre-training (``caffe_bgr``) and build the encoder's BatchNorm with
pre-training's eps (1e-3). Seed ``s`` gives the same decoder init, batch order and flips for every encoder.

Compute plan (one worker, one torch thread; the other core of the 2-core AMD EPYC VM is left to other users).
Measured in the first sitting, under ``nice -n 10`` with other jobs running: pre-training 0.56 s/step (the
4000-step main run took 2216 s) → 7500 dose steps + 3 × 2000 ablation steps ≈ 2.1 h; frozen probe 0.18 s/step,
93 s per seed plus 19 s of feature caching per encoder → 9 encoders × 8 seeds ≈ 1.9 h; fine-tuned probe about
8 min each (earlier round) → 16 ≈ 2.1 h; signals ≈ 12 s per checkpoint (16 frames) → 9 × 7 ≈ 13 min; synth 3 min.
About 6.3 h on one core. A frozen-probe control (scratch weights, BN statistics of the train images) sits
right after the main comparison.

Caching: a run's key is a hash of its config and of the source files its result depends on (the method's
modules for pre-training, the probe modules for probes — not docs or tests) and of the runs it reads. A run
is done when ``results/runs/<key>.json`` exists (committed; small); data and checkpoints stay in the cache.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from depth_experiment import HISTORY_KEYS, encoder_report, machine
from simipu.checkpoint import list_checkpoints, load_checkpoint
from simipu.config import load_config
from simipu.depth import make_config, run_depth_probe
from simipu.export import image_backbone_state
from simipu.frozen_probe import run_frozen_probe
from simipu.model import SimIPU
from simipu.train import pretrain

ROOT = Path(__file__).resolve().parents[1]
CODE_ALIASES = ROOT / "results" / "runs" / "code_aliases.json"  # see benchmarks/adopt_code.py
PARTS = ("pretrain", "frozen", "finetune", "signals", "report")
# Source files each kind of run depends on (paths relative to ROOT; globs allowed).
CODE = {
    "data": ("simipu/synth/*.py",),
    "pretrain": ("simipu/config.py", "simipu/configs/tiny.yaml", "simipu/data.py", "simipu/pipeline.py",
                 "simipu/views.py", "simipu/geometry.py", "simipu/model.py", "simipu/pointnet.py",
                 "simipu/losses.py", "simipu/matching.py", "simipu/train.py", "simipu/ops/*.py"),
    "frozen": ("simipu/depth.py", "simipu/depth_data.py", "simipu/frozen_probe.py"),
    "finetune": ("simipu/depth.py", "simipu/depth_data.py"),
}
CODE["signals"] = (*CODE["pretrain"], "simipu/signals.py")
SIGNAL_FRAMES = 16     # held-out frames the signals are measured on, per kept checkpoint
ABLATIONS = {"greedy": ("model.matching=greedy",), "no_intra": ("model.lambda_intra=0",),
             "no_inter": ("model.mu_inter=0",)}


@dataclass(frozen=True)
class Plan:
    train_frames: int
    val_frames: int
    dose: tuple[tuple[int, int], ...]        # (distinct frames, steps), smallest first; the last is the main run
    ablation_budget: tuple[int, int]         # (frames, steps) of the Table 5 runs; one of ``dose``
    frozen_seeds: tuple[int, ...]
    finetune_seeds: tuple[int, ...]
    frozen: dict = field(default_factory=lambda: dict(steps=500, lr=1e-3))   # DepthProbeConfig values
    finetune: dict = field(default_factory=lambda: dict(steps=200, lr=2e-4))
    probe: dict = field(default_factory=dict)                                # both probes
    synth: dict = field(default_factory=dict)                                # simipu.synth.generate extras
    pretrain: tuple[str, ...] = ()                                           # extra tiny-preset overrides
    checkpoints: int = 8                                                     # kept per pre-training


FULL = Plan(train_frames=200, val_frames=50, dose=((25, 500), (50, 1000), (100, 2000), (200, 4000)),
            ablation_budget=(100, 2000), frozen_seeds=tuple(range(8)), finetune_seeds=tuple(range(8)))
QUICK = Plan(train_frames=4, val_frames=2, dose=((2, 2), (4, 4)), ablation_budget=(2, 2), frozen_seeds=(0, 1),
             finetune_seeds=(0, 1), frozen=dict(steps=2, lr=1e-3), finetune=dict(steps=2, lr=2e-4),
             probe=dict(image_size=(192, 64), batch_size=2),
             synth=dict(image_size=(416, 128), beams=32, azimuth_step_deg=0.35),
             pretrain=("data.num_points=1024", "model.point.num_points=[256, 64, [32, 32]]",
                       "model.point.fps_sample_range_lists=[[-1], [-1], [32, -1]]"), checkpoints=2)


def code_hash(kind: str) -> str:
    """sha256 over the names and bytes of the source files ``kind`` depends on (``CODE``), or the older hash it
    stands for in ``CODE_ALIASES`` (written by ``benchmarks/adopt_code.py`` after checking that the change
    leaves the quick plan's results identical)."""
    h = hashlib.sha256()
    for pattern in CODE[kind]:
        for path in sorted(ROOT.glob(pattern)):
            h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    aliases = json.loads(CODE_ALIASES.read_text())["aliases"] if CODE_ALIASES.exists() else {}
    return aliases.get(kind, {}).get(h.hexdigest(), h.hexdigest())


@dataclass
class Run:
    """One cached unit of work. ``config`` holds everything its result depends on (with its inputs' keys)."""
    kind: str                 # data | init | pretrain | frozen | finetune
    name: str                 # human label, e.g. 'pretrain simipu 200f/4000s', 'frozen scratch seed 3'
    config: dict
    needs: tuple = ()         # runs whose artefacts this one reads
    key: str = ""

    def __post_init__(self):
        code = code_hash("pretrain" if self.kind == "init" else self.kind)
        blob = json.dumps(dict(kind=self.kind, config=self.config, code=code), sort_keys=True, default=str)
        self.key = f"{self.kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


class Experiment:
    """The planned runs and where their artefacts live: ``cache/<key>/`` (data, checkpoints) and
    ``results/runs/<key>.json`` (the summary that marks a run done)."""

    def __init__(self, plan: Plan, cache: Path, results: Path):
        self.plan, self.cache, self.results = plan, Path(cache), Path(results)
        self.runs_dir = self.results / "runs"
        n = plan.train_frames + plan.val_frames
        self.data = Run("data", "data", dict(frames=n, train=plan.train_frames, seed=0, fov_only=True, **plan.synth))
        self.pretrains = {}   # (label, frames, steps) -> Run
        for frames, steps in reversed(plan.dose):
            self._pretrain("simipu", frames, steps)
        for name in ABLATIONS:
            self._pretrain(name, *plan.ablation_budget)
        self.init = Run("init", "scratch encoder (pre-training's seed-0 init)", dict(overrides=list(plan.pretrain)))
        # Control: the same random weights with BatchNorm statistics re-estimated on the probe's train images (no
        # learning), so that a frozen-probe gain is not merely pre-training's calibrated BN statistics.
        self.init_bn = Run("init", "scratch encoder, BN statistics of the train images",
                           dict(overrides=list(plan.pretrain), bn_from="train", probe=plan.probe), (self.data,))
        self.encoders = {"scratch": self.init, "scratch_bn": self.init_bn,
                         **{f"{n} {f}f/{s}s": r for (n, f, s), r in self.pretrains.items()}}

    def _pretrain(self, name: str, frames: int, steps: int) -> Run:
        overrides = [*self.plan.pretrain, *ABLATIONS.get(name, ())]
        config = dict(data=self.data.key, frames=frames, steps=steps, overrides=overrides,
                      checkpoints=self.plan.checkpoints)
        run = Run("pretrain", f"pretrain {name} {frames}f/{steps}s", config, (self.data,))
        self.pretrains[(name, frames, steps)] = run
        return run

    def probe(self, kind: str, encoder: str, seed: int) -> Run:
        p = self.plan
        cfg = {**(p.frozen if kind == "frozen" else p.finetune), **p.probe, "seed": seed}
        enc = self.encoders[encoder]
        config = dict(data=self.data.key, encoder=enc.key, probe=cfg)
        return Run(kind, f"{kind} {encoder} seed {seed}", config, (self.data, enc))

    @property
    def main(self) -> str:
        return "simipu {}f/{}s".format(*self.plan.dose[-1])

    def planned(self) -> list[Run]:
        """Every run, most important first: main comparison, dose-response, ablations."""
        p = self.plan
        out = [self.data, self.init]
        groups = [["scratch", self.main], ["scratch_bn"],
                  *[[f"simipu {f}f/{s}s"] for f, s in p.dose[:-1]],    # cheapest first: the curve fills sooner
                  *[[f"{n} {p.ablation_budget[0]}f/{p.ablation_budget[1]}s"] for n in ABLATIONS]]
        for encoders in groups:
            for e in encoders:
                if self.encoders[e] is self.init_bn:
                    out.append(self.init_bn)
                if self.encoders[e].kind == "pretrain":
                    out.append(self.encoders[e])
                out += [self.probe("frozen", e, s) for s in p.frozen_seeds]
            if self.main in encoders:
                out += [self.probe("finetune", e, s) for e in encoders for s in p.finetune_seeds]
        return out + [self.signals(run) for run in self.pretrains.values()]

    def signals(self, pretrain_run: Run) -> Run:
        return Run("signals", pretrain_run.name.replace("pretrain", "signals"),
                   dict(pretrain=pretrain_run.key, frames=min(SIGNAL_FRAMES, self.plan.val_frames)), (pretrain_run,))

    # --- artefacts --------------------------------------------------------------------------------------
    def json_path(self, run: Run) -> Path:
        return self.runs_dir / f"{run.key}.json"

    def record(self, run: Run) -> dict | None:
        path = self.json_path(run)
        return json.loads(path.read_text()) if path.is_file() else None

    def done(self, run: Run) -> bool:
        return self.json_path(run).is_file()

    def artefact_ok(self, run: Run) -> bool:
        """Whether the cached files a later run reads exist (data folder, checkpoint, init file)."""
        if run.kind == "data":
            return (self.cache / run.key / "ImageSets" / "val.txt").is_file()
        if run.kind == "pretrain":
            return bool(list_checkpoints(self.cache / run.key))
        if run.kind == "init":
            return (self.cache / run.key / "encoder.pth").is_file()
        return True

    def write(self, run: Run, record: dict) -> None:
        """Write ``run``'s record; a run re-made because its files left the cache never replaces the record the
        probes were made from: its record goes to ``runs/remade/KEY-CPU.json`` (another CPU, other floats)."""
        record = dict(key=run.key, kind=run.kind, name=run.name, config=run.config, machine=machine(), **record)
        path = self.json_path(run)
        if path.is_file():
            path = self.runs_dir / "remade" / f"{run.key}-{re.sub(r'[^A-Za-z0-9]+', '_', record['machine']['cpu'])}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
        os.replace(tmp, path)

    # --- execution --------------------------------------------------------------------------------------
    def ensure(self, run: Run) -> None:
        """Make ``run``'s artefact exist (running it, and what it needs, when missing)."""
        if self.done(run) and self.artefact_ok(run):
            return
        if self.done(run):
            print(f"re-making {run.name}: done, but its files are not in {self.cache}", flush=True)
        for dep in run.needs:
            self.ensure(dep)
        getattr(self, f"_run_{run.kind}")(run)

    def _run_data(self, run: Run) -> None:
        from simipu.synth import generate
        t0, root = time.perf_counter(), self.cache / run.key
        p = self.plan
        generate(root, frames=p.train_frames + p.val_frames, seed=0, split_val_every=0, progress=True, fov_only=True,
                 existing="overwrite" if root.exists() else None, **p.synth)
        ids = [f"{i:06d}" for i in range(p.train_frames + p.val_frames)]
        splits = dict(train=ids[:p.train_frames], val=ids[p.train_frames:], trainval=ids)
        for name, split in splits.items():
            (root / "ImageSets" / f"{name}.txt").write_text("".join(i + "\n" for i in split))
        for f, _ in p.dose:  # the first f train frames as a root of its own (split names are fixed)
            sub = self.subset_root(f)
            (sub / "ImageSets").mkdir(parents=True, exist_ok=True)
            if not (sub / "training").exists():
                (sub / "training").symlink_to(root / "training", target_is_directory=True)
            (sub / "ImageSets" / "train.txt").write_text("".join(i + "\n" for i in ids[:f]))
        self.write(run, dict(wall_seconds=time.perf_counter() - t0))

    def subset_root(self, frames: int) -> Path:
        """A data root whose ``train`` split is the first ``frames`` train frames (``training/`` linked)."""
        return self.cache / self.data.key / "subsets" / f"train_{frames:03d}"

    def _pretrain_config(self, run: Run):
        c, k = run.config, self.plan.checkpoints
        return load_config("tiny", [
            f"data.root={self.subset_root(c['frames'])}", "data.splits=[train]", "data.num_workers=0",
            f"train.max_steps={c['steps']}", "train.epochs=100000", "train.seed=0", f"train.out={self.cache / run.key}",
            "train.threads=1", "train.device=cpu", f"train.keep_last={k}",
            f"train.ckpt_every={max(1, c['steps'] // k)}", *c["overrides"]])

    def _run_pretrain(self, run: Run) -> None:
        cfg = self._pretrain_config(run)
        summary = pretrain(cfg, progress=True, resume=bool(list_checkpoints(cfg.train.out)))  # a killed run goes on
        ckpt = load_checkpoint(list_checkpoints(self.cache / run.key)[-1])
        every = max(1, len(ckpt["history"]) // 200)          # at most ~200 rows of history in git
        history = {k: [round(row.get(k, 0.0), 5) for row in ckpt["history"][::every]] for k in HISTORY_KEYS}
        self.write(run, dict(summary=summary, history=history, encoder=encoder_report(cfg, ckpt),
                             wall_seconds=summary["wall_seconds"],
                             seconds_per_step=cfg.train.batch_size / summary["samples_per_s"]))

    def _run_init(self, run: Run) -> None:
        cfg = load_config("tiny", ["train.seed=0", *run.config["overrides"]])
        torch.manual_seed(cfg.train.seed)                     # as train.pretrain builds its model
        state = image_backbone_state(SimIPU(cfg.model).state_dict(), cfg.model.image_backbone)
        if run.config.get("bn_from"):
            state = self._bn_statistics(state, cfg, run.config["bn_from"], run.config["probe"])
        (self.cache / run.key).mkdir(parents=True, exist_ok=True)
        torch.save(state, self.cache / run.key / "encoder.pth")
        self.write(run, dict(wall_seconds=0.0))

    def _bn_statistics(self, state: dict, cfg, split: str, probe: dict) -> dict:
        """``state`` with every BN's running mean/var replaced by the plain average over ``split``'s images
        (probe size and normalisation, no flip); the weights are untouched."""
        from functools import partial
        import torchvision
        from simipu.depth_data import DepthDataset
        net = getattr(torchvision.models, cfg.model.image_backbone)(
            norm_layer=partial(torch.nn.BatchNorm2d, eps=cfg.model.image_bn_eps))
        net.load_state_dict(state, strict=False)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None                             # cumulative average over all batches
        data = DepthDataset(self.cache / self.data.key, split, image_size=make_config(**probe).image_size,
                            img_norm="caffe_bgr")
        net.train()
        with torch.no_grad():
            for i in range(0, len(data), 8):
                net(torch.stack([data[j]["image"] for j in range(i, min(i + 8, len(data)))]))
        return {k: v for k, v in net.state_dict().items() if k in state}

    def encoder_file(self, run: Run) -> str:
        if run.kind == "init":
            return str(self.cache / run.key / "encoder.pth")
        return str(list_checkpoints(self.cache / run.key)[-1])

    def _probe_kw(self, cfg: dict) -> dict:
        return dict(device="cpu", progress=True, img_norm="caffe_bgr", encoder_bn_eps=1e-3, **cfg)

    def _run_frozen(self, run: Run, batch: list[Run] | None = None) -> None:
        batch = batch or [run]
        enc = run.needs[1]
        cfg = {k: v for k, v in run.config["probe"].items() if k != "seed"}
        t0 = time.perf_counter()
        records = run_frozen_probe(self.cache / self.data.key, self.encoder_file(enc),
                                   seeds=[r.config["probe"]["seed"] for r in batch], **self._probe_kw(cfg))
        wall = (time.perf_counter() - t0) / len(batch)
        for r, rec in zip(batch, records):
            self.write(r, dict(metrics=rec["metrics"], losses=rec["losses"][::max(1, len(rec["losses"]) // 100)],
                               seconds_per_step=rec["seconds_per_step"], encode_seconds=rec["encode_seconds"],
                               wall_seconds=wall, probe_config=rec["config"]))

    def _run_finetune(self, run: Run) -> None:
        enc = run.needs[1]
        out, t0 = self.cache / run.key, time.perf_counter()
        metrics = run_depth_probe(self.cache / self.data.key, init=self.encoder_file(enc), out=out,
                                  **self._probe_kw(run.config["probe"]))
        rec = json.loads((out / "run.json").read_text())
        self.write(run, dict(metrics=metrics, losses=rec["losses"][::max(1, len(rec["losses"]) // 100)],
                             seconds_per_step=rec["seconds_per_step"], wall_seconds=time.perf_counter() - t0,
                             probe_config=rec["config"]))

    def _run_signals(self, run: Run) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from simipu.signals import pretraining_signals
        pre = run.needs[0]
        cfg = self._pretrain_config(pre)
        data_cfg = dataclasses.replace(cfg.data, root=str(self.cache / self.data.key))  # has the val split
        rows, t0 = [], time.perf_counter()
        writer = SummaryWriter(str(self.cache / pre.key / "signals"))
        for path in [None, *list_checkpoints(self.cache / pre.key)]:   # None: the initialisation, step 0
            torch.manual_seed(cfg.train.seed)                             # as train.pretrain builds its model
            model = SimIPU(cfg.model)
            state = load_checkpoint(path) if path else dict(step=0, model=model.state_dict())
            model.load_state_dict(state["model"])
            row = dict(step=int(state["step"]), **pretraining_signals(model, data_cfg, "val", run.config["frames"]))
            rows.append(row)
            for k, v in row.items():
                if k != "step":
                    writer.add_scalar(f"heldout/{k}", v, row["step"])
            print(f"  signals at step {row['step']}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                                   if k != "step"), flush=True)
        writer.close()
        summary = self.cache / pre.key / "summary.json"     # beside the run's own summary, as train.py writes it
        if summary.is_file():
            summary.write_text(json.dumps(dict(json.loads(summary.read_text()), heldout_signals=rows), indent=2))
        self.write(run, dict(rows=rows, wall_seconds=time.perf_counter() - t0))

    def execute(self, parts, only=()) -> int:
        """Run what ``parts`` asks for and is not done (only runs whose name has one of the words ``only``, when
        given: two runners on disjoint words share one cache); returns the number of runs executed."""
        todo = [r for r in self.planned() if r.kind in parts and not self.done(r)
                and (not only or any(w in r.name.split() for w in only))]
        executed = 0
        bar = tqdm(total=len(todo), desc="experiment runs", position=0)
        while todo:
            run = todo.pop(0)
            if self.done(run):            # written by a batch with an earlier run
                continue
            bar.set_postfix_str(run.name)
            waiting = [d.name for d in run.needs if d.kind not in (*parts, "data", "init") and not self.done(d)]
            if waiting:                   # a part not asked for: never run it behind the user's back (a done run
                #                           whose checkpoint left the cache is re-made by ensure(): same result)
                print(f"skip {run.name}: needs {', '.join(waiting)} (not done; add its part to --parts)", flush=True)
                bar.update(1)
                continue
            print(f"\n[{time.strftime('%H:%M:%S')}] {run.name} ({run.key})", flush=True)
            for dep in run.needs:
                self.ensure(dep)
            if run.kind == "frozen":      # every pending seed of this encoder: features computed once
                batch = [r for r in [run, *todo] if r.kind == "frozen" and r.needs[1] is run.needs[1]]
                self._run_frozen(run, batch)
                executed += len(batch)
                bar.update(len(batch))
                continue
            getattr(self, f"_run_{run.kind}")(run)
            executed += 1
            bar.update(1)
        bar.close()
        return executed


def recheck(exp: Experiment, name: str) -> int:
    """Re-run the done probe ``name`` here (its inputs re-made if the cache lacks them) without touching its record,
    and print both: the size of the machine-to-machine difference for the same config and code."""
    import tempfile
    run = next((r for r in exp.planned() if r.name == name and r.kind in ("frozen", "finetune")), None)
    if run is None or not exp.done(run):
        print(f"--recheck: no done probe named {name!r} (see --list)", file=sys.stderr)
        return 2
    for dep in run.needs:
        exp.ensure(dep)
    with tempfile.TemporaryDirectory() as tmp:
        again = Experiment(exp.plan, exp.cache, Path(tmp))
        getattr(again, f"_run_{run.kind}")(run)
        new = again.record(run)
    old = exp.record(run)
    print(f"{name}: recorded on {old['machine']['cpu']} at {old['machine']['commit']}, "
          f"re-run on {new['machine']['cpu']}")
    for k in old["metrics"]:
        print(f"  {k:9} recorded {old['metrics'][k]:.5f}  here {new['metrics'][k]:.5f}  "
              f"Δ {new['metrics'][k] - old['metrics'][k]:+.5f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "simipu-experiment"),
                    help="folder for data, checkpoints and probe outputs (outside the repository)")
    ap.add_argument("--results", default=str(ROOT / "results"), help="folder for runs/*.json and the report")
    ap.add_argument("--parts", default="pretrain,frozen,finetune,signals,report", help=f"comma-separated subset of {PARTS}")
    ap.add_argument("--only", default="", help="comma-separated words; run only the runs whose name has one of them "
                    "(e.g. 'greedy,no_intra'), so that a second runner can take the others (start it once the data "
                    "exists)")
    ap.add_argument("--list", action="store_true", help="print every planned run and whether it is done")
    ap.add_argument("--quick", action="store_true", help="a tiny plan through the whole path (tests)")
    ap.add_argument("--recheck", metavar="RUN", help="re-run one done probe (its name, e.g. 'frozen scratch seed 0') "
                    "on this machine into a temporary folder and print its metrics beside the recorded ones")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"--parts: unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    torch.set_num_threads(1)
    exp = Experiment(QUICK if args.quick else FULL, Path(args.cache), Path(args.results))
    if args.list:
        for run in exp.planned():
            rec = exp.record(run)
            state = f"done {rec.get('wall_seconds', 0):7.0f} s" if rec else "missing"
            print(f"{state:>15}  {run.kind:8} {run.key}  {run.name}")
        return 0
    if args.recheck:
        return recheck(exp, args.recheck)
    t0 = time.perf_counter()
    executed = exp.execute(parts, only=[w.strip() for w in args.only.split(',') if w.strip()])
    print(f"executed {executed} run(s) in {time.perf_counter() - t0:.0f} s", flush=True)
    if "report" in parts:
        from experiment_report import write_report
        write_report(exp, command="python " + " ".join(["benchmarks/experiment.py", *(argv or sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
