"""A run of the suite as data: pytest-benchmark's JSON read as flat records, and the saved runs of this
machine (one JSON file per run, with its git commit and the machine's measured run-to-run spread), which
the regression check and the history read."""

from __future__ import annotations

import json
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from statistics import median

from .._io import atomic_write

#: per-round samples kept per benchmark in a saved run (enough for a bootstrap, small on disk)
MAX_SAMPLES = 200


def load_run(path) -> dict:
    """A pytest-benchmark JSON file; ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list)")
    for i, b in enumerate(run["benchmarks"]):
        if not isinstance(b, dict) or "name" not in b or not isinstance(b.get("stats"), dict):
            raise ValueError(f"{path}: benchmarks[{i}] has no name or stats")
    return run


def compact(run: Mapping) -> dict:
    """The run with each benchmark's raw timings (stats["data"], a float per round) moved, at most
    MAX_SAMPLES of them, to extra_info["samples"] where the suite recorded none (the fitting benchmarks);
    the kernel benchmarks keep their own samples, the ratio of each round to its paired copy."""
    out = dict(run)
    bs = []
    for b in run["benchmarks"]:
        info = dict(b.get("extra_info") or {})
        data = b["stats"].get("data")
        if "samples" not in info and data:
            info["samples"] = [float(f"{v:.6g}") for v in data[:MAX_SAMPLES]]
            info["sample_kind"] = "seconds"
        bs.append({**b, "extra_info": info, "stats": {k: v for k, v in b["stats"].items() if k != "data"}})
    out["benchmarks"] = bs
    return out


def records(run: Mapping) -> list[dict]:
    """One flat dict per benchmark: name, test (the function's name), fullname, group, median (s), rounds,
    the extra_info fields (op, backend, mode, degree, size, dtype, device, bytes, peak_bytes, samples,
    first_call_s, ...), gbps (bytes / median) and copy_fraction (gbps over the copy's at the same size,
    dtype and device) and, for a benchmark timed in rounds paired with the copy, anchored (the median of
    its per-round time over the paired copy's)."""
    out = []
    for b in run.get("benchmarks", []):
        st = b.get("stats") or {}
        r = {
            "name": b["name"],
            "test": b["name"].split("[")[0],
            "fullname": b.get("fullname", b["name"]),
            "group": b.get("group"),
            "median": st.get("median"),
            "rounds": st.get("rounds"),
            "iqr": st.get("iqr"),
        }
        r.update({k: v for k, v in (b.get("extra_info") or {}).items() if k not in r})
        if r.get("sample_kind") == "anchored" and r.get("samples"):
            r["anchored"] = median(r["samples"])
        if r.get("bytes") and r["median"]:
            r["gbps"] = r["bytes"] / r["median"] / 1e9
        out.append(r)
    copies = {
        (r.get("device"), r.get("dtype"), r.get("size")): r["gbps"]
        for r in out
        if r.get("op") == "copy" and r.get("gbps")
    }
    for r in out:
        c = copies.get((r.get("device"), r.get("dtype"), r.get("size")))
        if r.get("op") and r.get("gbps") and c:
            r["copy_fraction"] = r["gbps"] / c
    return out


def raced(slaf: Mapping, peer: Mapping) -> float | None:
    """The SLAF record's time over the peer's from the peer's race against it (the median over the pairs of
    calls of the peer's rival_samples, inverted), or None: the peer was not raced against that backend on
    the same workload."""
    same = all(slaf.get(k) == peer.get(k) for k in ("mode", "degree", "size", "dtype", "device"))
    rival = slaf.get("op") == "slaf" and peer.get("rival_backend") == slaf.get("backend")
    samples = peer.get("rival_samples")
    if not (same and rival and samples):
        return None
    return median(1.0 / v for v in samples)


def matches(r: Mapping, selector: Mapping) -> bool:
    return all(r.get(k) == v for k, v in selector.items())


def select(recs: Iterable[Mapping], selector: Mapping | None = None, **fields) -> list[Mapping]:
    sel = {**(selector or {}), **fields}
    return [r for r in recs if matches(r, sel)]


def one(recs, **fields):
    """The one record matching `fields`, or None (none, or more than one)."""
    hits = select(recs, **fields)
    return hits[0] if len(hits) == 1 else None


# ----------------------------------------------------------------------------------------------------
# Saved runs
# ----------------------------------------------------------------------------------------------------
def storage_path(root, device: str) -> Path:
    """Where `slaf-approx bench` keeps its saved runs: one folder per host and device, so that a run is
    only ever compared with an earlier run of the same machine."""
    host = re.sub(r"[^A-Za-z0-9_.-]+", "_", platform.node() or "host")
    return Path(root) / ".benchmarks" / f"{host}-{device}"


def _git(*args) -> str | None:
    src = Path(__file__).resolve().parents[2]
    try:
        p = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def code_version() -> dict:
    """The git commit of the benchmarked code (the package's own checkout), whether tracked files differ
    from it, and a digest of that difference (two runs with the same commit and digest ran the same
    code); {"commit": None} when the package is not in a git checkout (an installed wheel)."""
    import hashlib

    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return {"commit": None, "dirty": None, "diff": None}
    diff = _git("diff", "HEAD") or ""
    return {"commit": sha, "dirty": bool(diff), "diff": hashlib.sha256(diff.encode()).hexdigest()[:16]}


def commit_order() -> dict[str, int]:
    """Commit -> position in the history of HEAD (0 the oldest); empty outside a git checkout."""
    out = _git("rev-list", "--reverse", "--topo-order", "HEAD")
    return {sha: i for i, sha in enumerate(out.split())} if out else {}


def saved_runs(storage) -> list[Path]:
    """The saved runs under `storage`, oldest first."""
    return sorted(Path(storage).glob("[0-9][0-9][0-9][0-9]_*.json"))


def save_run(storage, run: Mapping) -> Path:
    """Write `run` (compact, with its "slaf_approx" block) as the next NNNN_COMMIT.json under storage."""
    storage = Path(storage)
    storage.mkdir(parents=True, exist_ok=True)
    files = saved_runs(storage)
    n = int(files[-1].name[:4]) + 1 if files else 1
    commit = ((run.get("slaf_approx") or {}).get("commit") or "unknown")[:10]
    path = storage / f"{n:04d}_{commit}.json"
    atomic_write(path, (json.dumps(run, indent=1) + "\n").encode("utf-8"))
    return path
