"""Keep finished experiment runs across a code change that does not change their results — after checking it.

    python benchmarks/adopt_code.py OLD_REV [--work DIR] [--dry-run]

``benchmarks/experiment.py`` keys every run by its config and a hash of the source files its result depends
on (``CODE`` there), so any edit of those files — a docstring, a new check on hostile input — turns every
finished run into "not yet run", hours of CPU. This script decides, by measurement, whether the runs made
with the code of ``OLD_REV`` (a commit) may count for the code of the working tree:

1. it checks out ``OLD_REV`` into a temporary git worktree;
2. it runs the whole ``--quick`` plan twice, once with that checkout's code and once with the working
   tree's, into separate caches (about a minute each);
3. for every kind of run (``pretrain``, ``frozen``, ...) whose code hash differs between the two, it compares
   the result fields of each quick run of that kind bit for bit (:data:`RESULT_FIELDS`: losses, metrics,
   parameter hashes, signals; not wall times, paths or machine);
4. where every run of a kind agrees, it records ``new hash -> old hash`` for that kind in
   ``results/runs/code_aliases.json``; ``experiment.py`` then finds the old runs under the new code. A kind
   whose quick results differ is not adopted: its runs will be made again.

The quick plan runs the same functions as the full one on a smaller plan, so agreement there is evidence,
not proof, that the full runs would agree; the aliases file records the commits compared and when, and
each run's JSON keeps the code it was made with (its ``key``). Nothing is adopted by hand.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALIASES = ROOT / "results" / "runs" / "code_aliases.json"
# What a run's result is, per kind (JSON paths into results/runs/<key>.json; dotted for nested fields).
RESULT_FIELDS = {
    "pretrain": ("history", "encoder", "summary.rank_param_sha256", "summary.first", "summary.last10_mean"),
    "frozen": ("metrics", "losses"),
    "finetune": ("metrics", "losses"),
    "signals": ("rows",),
}
# Timings inside those fields (e.g. the first step's samples/s in a pre-training summary) are not results.
TIMINGS = frozenset({"samples_per_s", "wall_seconds", "seconds_per_step", "step_s", "encode_seconds"})
# Kinds with no result fields of their own follow the kind whose code they hash with.
FOLLOWS = {"init": "pretrain"}
_HASHES = ("import json, sys; sys.path.insert(0, 'benchmarks'); import experiment; "
           "print(json.dumps({k: experiment.code_hash(k) for k in experiment.CODE}))")


def _python(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """Run python in ``root`` with ``root``'s simipu first on the path (not the installed one)."""
    env = {**__import__("os").environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=root, env=env, check=True, text=True, capture_output=True,
                          **kw)


def code_hashes(root: Path) -> dict[str, str]:
    """``experiment.code_hash(kind)`` of every kind, as the code in ``root`` computes it (aliases included)."""
    return json.loads(_python(root, "-c", _HASHES).stdout)


def quick_results(root: Path, work: Path) -> dict[tuple[str, str], dict]:
    """Run the ``--quick`` plan with ``root``'s code into ``work``; ``{(kind, name): run JSON}``."""
    _python(root, "benchmarks/experiment.py", "--quick", "--cache", str(work / "cache"), "--results",
            str(work / "results"), "--parts", "pretrain,frozen,finetune,signals")
    runs = {}
    for path in sorted((work / "results" / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        if "kind" in run and "name" in run:
            runs[(run["kind"], run["name"])] = run
    return runs


def _field(run: dict, dotted: str):
    """The value at ``dotted`` in ``run`` (None when absent), with timings removed at every depth."""
    for part in dotted.split("."):
        if not isinstance(run, dict) or part not in run:
            return None
        run = run[part]
    return _without_timings(run)


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def differences(old: dict, new: dict, kind: str) -> list[str]:
    """Why the quick runs of ``kind`` do not agree (empty when every result field is equal)."""
    names = sorted(name for k, name in old if k == kind) or []
    if names != sorted(name for k, name in new if k == kind):
        return [f"{kind}: the two plans made different runs"]
    if not names:
        return [f"{kind}: the quick plan made no run of this kind to compare"]
    out = []
    for name in names:
        for f in RESULT_FIELDS[kind]:
            a, b = _field(old[(kind, name)], f), _field(new[(kind, name)], f)
            if a != b:
                out.append(f"{name}: {f} differs")
    return out


def decide(old_hashes: dict, new_hashes: dict, old: dict, new: dict) -> tuple[dict, dict]:
    """``(aliases {kind: {new hash: old hash}}, refusals {kind: [reasons]})`` for the kinds whose code changed."""
    aliases, refused = {}, {}
    for kind in sorted(new_hashes):
        if old_hashes.get(kind) in (None, new_hashes[kind]):
            continue
        judge = FOLLOWS.get(kind, kind)
        if judge not in RESULT_FIELDS:
            refused[kind] = [f"{kind}: no result fields to compare"]
            continue
        why = differences(old, new, judge)
        if why:
            refused[kind] = why
        else:
            aliases[kind] = {new_hashes[kind]: old_hashes[kind]}
    return aliases, refused


def merge_aliases(path: Path, aliases: dict, record: dict) -> dict:
    """Add ``aliases`` to the file at ``path`` (keeping older entries) with a record of the check."""
    data = json.loads(path.read_text()) if path.exists() else {"aliases": {}, "checks": []}
    for kind, pairs in aliases.items():
        data["aliases"].setdefault(kind, {}).update(pairs)
    data["checks"].append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old_rev", help="the commit whose finished runs should count for the working tree's code")
    ap.add_argument("--work", help="folder for the two quick runs (default: a temporary folder)")
    ap.add_argument("--dry-run", action="store_true", help="compare and report, write nothing")
    a = ap.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="simipu-adopt-"))
    old_root = work / "old"
    rev = subprocess.run(["git", "rev-parse", "--verify", f"{a.old_rev}^{{commit}}"], cwd=ROOT, text=True,
                         capture_output=True)
    if rev.returncode:
        print(f"adopt_code: error: {a.old_rev!r} is not a commit of {ROOT}", file=sys.stderr)
        return 2
    old_commit = rev.stdout.strip()
    subprocess.run(["git", "worktree", "add", "--detach", "--force", str(old_root), old_commit], cwd=ROOT,
                   check=True, capture_output=True)
    try:
        old_hashes, new_hashes = code_hashes(old_root), code_hashes(ROOT)
        changed = sorted(k for k in new_hashes if old_hashes.get(k) != new_hashes[k])
        print(f"code that changed since {old_commit[:10]}: {', '.join(changed) or 'none'}")
        if not changed:
            return 0
        t0 = time.perf_counter()
        old, new = quick_results(old_root, work / "old_run"), quick_results(ROOT, work / "new_run")
        aliases, refused = decide(old_hashes, new_hashes, old, new)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_root)], cwd=ROOT, capture_output=True)
    for kind in changed:
        if kind in aliases:
            print(f"  {kind}: quick results identical -> runs made with {old_commit[:10]}'s code count")
        else:
            print(f"  {kind}: not adopted ({'; '.join(refused.get(kind, ['?'])[:3])})")
    if aliases and not a.dry_run:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True, capture_output=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, text=True,
                                    capture_output=True).stdout.strip())
        record = dict(old=old_commit, new=head + (" + uncommitted changes" if dirty else ""),
                      when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), adopted=sorted(aliases),
                      refused=sorted(refused), quick_runs_compared=len(new),
                      seconds=round(time.perf_counter() - t0, 1))
        merge_aliases(ALIASES, aliases, record)
        print(f"written: {ALIASES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
