"""Layered stack versus N flat venvs: build time (cold and warm), no-op rebuild, disk use.

The layered stack is one runtime, one heavy framework (scipy + pandas) and N small apps; the flat
side is N independent ``uv venv`` + ``uv pip install`` environments holding the same packages per
app. Both sides run on the same interpreter (the runtime layer kernelstacks built), both compile
bytecode, and each side gets an empty uv cache for its cold run. Results go to
docs/performance.md.

Usage: python bench/build.py [--apps N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import disk_usage, mib, run, write_section

SMALL = ["six", "idna", "attrs", "certifi", "sniffio", "tabulate", "packaging", "toolz"]
HEAVY = ["scipy", "pandas"]
EXCLUDE_NEWER = "2025-10-01T00:00:00Z"


def stack_text(apps: int, xy: str) -> str:
    """The benchmark stack file."""
    parts = [
        f'[[runtimes]]\nname = "rt"\npython_implementation = "cpython@{xy}"\nrequirements = []\n',
        f'[[frameworks]]\nname = "sci"\nruntime = "rt"\nrequirements = {HEAVY!r}\n',
    ]
    for i in range(apps):
        parts.append(
            f'[[applications]]\nname = "app{i}"\nlaunch_module = "launch.py"\n'
            f'frameworks = ["sci"]\nrequirements = ["{SMALL[i % len(SMALL)]}"]\n'
        )
    parts.append(f'[tool.uv]\nexclude-newer = "{EXCLUDE_NEWER}"\n')
    return "\n".join(parts).replace("'", '"')


def ks(*args: object) -> list[str]:
    """A kernelstacks CLI command line."""
    return [sys.executable, "-m", "kernelstacks", *map(str, args)]


def layered(work: Path, apps: int, env: dict[str, str]) -> dict[str, float]:
    """Lock + build the layered stack; returns timings."""
    spec = work / "venvstacks.toml"
    xy = f"{sys.version_info.major}.{sys.version_info.minor}"
    spec.write_text(stack_text(apps, xy))
    (work / "launch.py").write_text("import scipy, pandas\nprint('ok')\n")
    override = ["--python", f"cpython@{xy}={sys.executable}", "--runtime-source", "local"]
    times = {"lock": run(ks("lock", spec, *override), env)}
    times["build"] = run(ks("build", spec, "-j", "2", *override), env)
    t0 = time.perf_counter()
    run(ks("lock", spec, "--if-needed", *override), env)
    run(ks("build", spec, *override), env)
    times["noop"] = time.perf_counter() - t0
    return times


def flat(work: Path, runtime_python: Path, apps: int, env: dict[str, str]) -> float:
    """N flat venvs, one after the other, as a simple script would make them."""
    from kernelstacks._support.uv import uv_binary

    uv = uv_binary()
    total = 0.0
    for i in range(apps):
        venv = work / f"flat{i}"
        total += run([uv, "venv", "-q", "--python", runtime_python, venv], env)
        reqs = [*HEAVY, SMALL[i % len(SMALL)]]
        total += run(
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                venv / "bin" / "python",
                "--compile-bytecode",
                "--exclude-newer",
                EXCLUDE_NEWER,
                *reqs,
            ],
            env,
        )
    return total


def measure(apps: int, base: Path) -> dict[str, object]:
    """Cold and warm runs of both sides."""
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1")
    env.pop("PIP_FIND_LINKS", None)
    results: dict[str, object] = {}
    for label in ("cold", "warm"):
        cache = base / "cache-layered"
        if label == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        work = base / f"layered-{label}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        results[f"layered_{label}"] = layered(work, apps, {**env, "UV_CACHE_DIR": str(cache)})
    runtime = base / "layered-warm" / "_build" / "rt"
    for label in ("cold", "warm"):
        cache = base / "cache-flat"
        if label == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        work = base / f"flat-{label}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        results[f"flat_{label}"] = flat(
            work, runtime / "bin" / "python3", apps, {**env, "UV_CACHE_DIR": str(cache)}
        )
    build = base / "layered-warm" / "_build"
    results["disk_layered"] = disk_usage([build])
    results["disk_runtime"] = disk_usage([build / "rt"])
    results["disk_flat_one"] = disk_usage([build / "rt", base / "flat-warm" / "flat0"])
    results["disk_flat_all"] = disk_usage(
        [build / "rt", *(base / "flat-warm" / f"flat{i}" for i in range(apps))]
    )
    return results


def report(apps: int, r: dict) -> str:
    """The Markdown section."""
    lc, lw, fc, fw = r["layered_cold"], r["layered_warm"], r["flat_cold"], r["flat_warm"]
    disk_target = (1 + 0.05 * apps) * r["disk_flat_one"]
    time_target = 1.5 * fw
    warm_total = lw["lock"] + lw["build"]
    rows = [
        "| measure | layered stack | N flat venvs | target | met |",
        "| --- | --- | --- | --- | --- |",
        f"| cold build (empty uv cache) | {lc['lock'] + lc['build']:.1f} s "
        f"(lock {lc['lock']:.1f} + build {lc['build']:.1f}) | {fc:.1f} s | | |",
        f"| warm build (cache filled) | {warm_total:.1f} s "
        f"(lock {lw['lock']:.1f} + build {lw['build']:.1f}) | {fw:.1f} s | "
        f"<= 1.5 x flat = {time_target:.1f} s | {'yes' if warm_total <= time_target else 'NO'} |",
        f"| no-op rebuild (`lock --if-needed` + `build`) | {lw['noop']:.1f} s | | "
        f"< 10% of first build = {0.1 * (lc['lock'] + lc['build']):.1f} s | "
        f"{'yes' if lw['noop'] < 0.1 * (lc['lock'] + lc['build']) else 'NO'} |",
        f"| disk used (hardlink-aware) | {mib(r['disk_layered'])} | {mib(r['disk_flat_all'])} "
        f"(one: {mib(r['disk_flat_one'])}) | <= (1 + 0.05 N) x one = {mib(int(disk_target))} | "
        f"{'yes' if r['disk_layered'] <= disk_target else 'NO'} |",
    ]
    return "\n".join(
        [
            "## Build: layered stack vs flat venvs (`bench/build.py`)",
            "",
            f"N = {apps} apps sharing one framework ({' + '.join(HEAVY)}); Python "
            f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
            f"measured {time.strftime('%Y-%m-%d')}. Both sides run on the same interpreter (the "
            "runtime layer), compile bytecode, and start their cold run with an empty uv cache. "
            "Disk figures include that runtime once on each side "
            f"({mib(r['disk_runtime'])}); the layered build runs with `-j 2`.",
            "",
            *rows,
        ]
    )


def main() -> None:
    """Parse options, measure, write docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ks-bench-build-"))
    try:
        results = measure(args.apps, base)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    text = report(args.apps, results)
    write_section("build", text)
    print(text)


if __name__ == "__main__":
    main()
