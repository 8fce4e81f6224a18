"""Publish and deploy against the machine's floor, measured in one run on the same stack.

Builds a stack of two runtimes and six frameworks (plus two apps), then times, on the same
layers:

- ``kernelstacks publish`` as ``tar.xz`` and as ``tar.zst`` (fresh output directories);
- ``tar -c | xz -T0 -6`` and ``tar -c | zstd -T0 -6`` of each layer (bytecode left out, as in
  our archives): the multi-core floor of each format;
- ``kernelstacks deploy`` of both (verify, unpack, relocate, compile bytecode);
- a raw ``tar -x`` of the same archives (layers that would not run where they land);
- venvstacks 0.8's ``publish`` of the same stack when ``--venvstacks EXE`` names its command
  (run in its own environment; its runtime is seeded from this interpreter).

Results, with the targets of issue 14 as ratios, go to docs/performance.md.

Usage: python bench/publish.py [--keep DIR] [--venvstacks EXE]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import mib, run, write_section

EXCLUDE_NEWER = "2025-10-01T00:00:00Z"
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


def second_python(xy: str) -> tuple[str, Path] | None:
    """Another local CPython (X.Y differs from ours) for the second runtime, if there is one."""
    for other in ("3.12", "3.11", "3.13"):
        if other == xy:
            continue
        for candidate in sorted(PYENV.glob(f"{other}*/bin/python{other}")):
            return other, candidate
    return None


def stack_text(xy: str, other: str | None) -> str:
    """Two runtimes, six frameworks, two apps (one runtime when no second Python exists)."""
    rt_b = "rt-b" if other else "rt-a"
    second = (
        f'\n[[runtimes]]\nname = "rt-b"\npython_implementation = "cpython@{other}"\n'
        "requirements = []\n"
        if other
        else ""
    )
    return f"""
[[runtimes]]
name = "rt-a"
python_implementation = "cpython@{xy}"
requirements = []
{second}
[[frameworks]]
name = "sci"
runtime = "rt-a"
requirements = ["scipy"]

[[frameworks]]
name = "pandas"
runtime = "rt-a"
requirements = ["pandas"]

[[frameworks]]
name = "web"
runtime = "rt-a"
requirements = ["httpx", "jinja2"]

[[frameworks]]
name = "jupyter"
runtime = "rt-a"
requirements = ["ipykernel"]

[[frameworks]]
name = "numeric"
runtime = "{rt_b}"
requirements = ["numpy", "sympy"]

[[frameworks]]
name = "tools"
runtime = "{rt_b}"
requirements = ["rich", "pygments", "attrs"]

[[applications]]
name = "one"
launch_module = "launch.py"
frameworks = ["sci", "jupyter"]
requirements = ["six"]

[[applications]]
name = "two"
launch_module = "launch.py"
frameworks = ["numeric"]
requirements = ["idna"]

[tool.uv]
exclude-newer = "{EXCLUDE_NEWER}"
"""


def floor(layers: list[str], build: Path, out: Path, compressor: list[str], suffix: str) -> float:
    """``tar -c --exclude=__pycache__ LAYER | COMPRESSOR > LAYER.SUFFIX``, layer after layer."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for name in layers:
        with open(out / f"{name}{suffix}", "wb") as sink:
            tar = subprocess.Popen(
                ["tar", "-cf", "-", "--exclude=__pycache__", "-C", str(build), name],
                stdout=subprocess.PIPE,
            )
            comp = subprocess.run(compressor, stdin=tar.stdout, stdout=sink, check=True)
            tar.wait()
            if tar.returncode or comp.returncode:
                sys.exit(f"floor measurement failed for {name}")
    return time.perf_counter() - t0


def raw_untar(archives: list[Path], dest: Path, flag: list[str]) -> float:
    """``tar -x`` of each archive (what unpacking costs with nothing else done)."""
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for archive in archives:
        subprocess.run(["tar", *flag, str(archive), "-C", str(dest)], check=True)
    return time.perf_counter() - t0


def fresh(folder: Path, timed: Callable[[], float], cpu: list[float]) -> float:
    """``timed()`` into an emptied ``folder``, after ``sync``: each round starts with no other
    round's files still being written back (on a small VM that skews the next one by 20%).
    The CPU time its programs used (user + system) is appended to ``cpu``."""
    shutil.rmtree(folder, ignore_errors=True)
    os.sync()
    time.sleep(1)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def compile_all(folder: Path) -> float:
    """``python -m compileall -j 0`` of what ``tar -x`` unpacked: the bytecode a deploy compiles.

    Unpacking plus this is the floor for a deploy that leaves runnable layers, since archives
    carry no bytecode (venvstacks' do not either: it embeds build paths).
    """
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(folder),
        ],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def main() -> None:
    """Build, then measure everything in one run, then write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: temp dir)")
    parser.add_argument("--venvstacks", help="venvstacks 0.8 command to compare publish with")
    parser.add_argument(
        "--rounds", type=int, default=3, help="deploy / tar -x rounds (the median is reported)"
    )
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ks-bench-publish-"))
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1")
    env.pop("PIP_FIND_LINKS", None)
    xy = f"{sys.version_info.major}.{sys.version_info.minor}"
    other = second_python(xy)
    ks = [sys.executable, "-m", "kernelstacks"]
    spec = base / "stack" / "venvstacks.toml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(stack_text(xy, other[0] if other else None))
    (spec.parent / "launch.py").write_text("print('ok')\n")
    override = ["--python", f"cpython@{xy}={sys.executable}", "--runtime-source", "local"]
    if other:
        override += ["--python", f"cpython@{other[0]}={other[1]}"]
    build = spec.parent / "_build"
    if not build.is_dir():
        run([*ks, "build", spec, "--lock-if-needed", *override], env)
    layers = sorted(p.name for p in build.iterdir() if p.is_dir() and not p.name.startswith("."))
    t: dict[str, float] = {}
    each: dict[str, list[float]] = {}  # every round of the deploy / tar -x medians
    for fmt in ("tar.xz", "tar.zst"):
        out = base / f"published-{fmt}"
        shutil.rmtree(out, ignore_errors=True)
        t[f"publish {fmt}"] = run([*ks, "publish", spec, "-o", out, "--format", fmt], env)
    t["tar | xz -T0"] = floor(layers, build, base / "floor-xz", ["xz", "-T0", "-6"], ".tar.xz")
    t["tar | zstd -T0"] = floor(
        layers, build, base / "floor-zst", ["zstd", "-T0", "-6", "-q"], ".tar.zst"
    )
    for fmt, flag in (("tar.xz", ["-xJf"]), ("tar.zst", ["--zstd", "-xf"])):
        archives = sorted((base / f"published-{fmt}").glob(f"*.{fmt}"))
        target, untar = base / f"deployed-{fmt}", base / f"untar-{fmt}"
        deploys, untars, cpu, full = [], [], [], []
        for _ in range(args.rounds):  # alternating, each from a clean, synced disk
            deploy = [*ks, "deploy", base / f"published-{fmt}", target]
            deploys.append(fresh(target, functools.partial(run, deploy, env), cpu))
            untars.append(fresh(untar, functools.partial(raw_untar, archives, untar, flag), []))
            if fmt == "tar.xz":  # and what compiling test suites too costs
                every = [*deploy, "--compile-tests"]
                full.append(fresh(target, functools.partial(run, every, env), []))
        if full:
            t["deploy --compile-tests"] = statistics.median(full)
            each["`deploy --compile-tests` (tar.xz)"] = full
        t[f"deploy {fmt}"] = statistics.median(deploys)
        t[f"tar -x {fmt}"] = statistics.median(untars)
        each[f"`deploy` ({fmt})"], each[f"`tar -x` ({fmt})"] = deploys, untars
        t[f"deploy cpu {fmt}"] = statistics.median(cpu)
        if fmt == "tar.xz":
            t["compileall tar.xz"] = compile_all(untar)
    if args.venvstacks:
        vs_out = base / "published-venvstacks"
        t["venvstacks publish"] = run(
            [args.venvstacks, "publish", spec, "--output-dir", vs_out, "--no-tag-outputs"], env
        )
    sizes = {
        label: sum(p.stat().st_size for p in (base / folder).glob("*.tar.*"))
        for label, folder in (
            ("tar.xz", "published-tar.xz"),
            ("tar.zst", "published-tar.zst"),
            ("xz -T0", "floor-xz"),
            ("zstd -T0", "floor-zst"),
        )
    }
    text = report(t, sizes, layers, other is not None, each)
    write_section("publish", text)
    print(text)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


def report(
    t: dict[str, float],
    sizes: dict[str, int],
    layers: list[str],
    two: bool,
    each: dict[str, list[float]],
) -> str:
    """The performance.md section: times, sizes and the ratios the targets are about."""
    xz_ratio = t["publish tar.xz"] / t["tar | xz -T0"]
    dep_xz = t["deploy tar.xz"] / t["tar -x tar.xz"]
    dep_zst = t["deploy tar.zst"] / t["tar -x tar.zst"]
    rows = [
        "| measure | time | compared with | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        f"| `publish --format tar.xz` | {t['publish tar.xz']:.1f} s | `tar \\| xz -T0 -6`: "
        f"{t['tar | xz -T0']:.1f} s | {xz_ratio:.2f}x | <= 1.15x: "
        f"{'met' if xz_ratio <= 1.15 else 'NOT met'} |",
        f"| `publish --format tar.zst` | {t['publish tar.zst']:.1f} s | `tar \\| zstd -T0 -6`: "
        f"{t['tar | zstd -T0']:.1f} s | {t['publish tar.zst'] / t['tar | zstd -T0']:.2f}x | "
        f"<= 10 s: {'met' if t['publish tar.zst'] <= 10 else 'NOT met'} |",
        f"| `deploy` (tar.xz) | {t['deploy tar.xz']:.1f} s | `tar -xJf`: "
        f"{t['tar -x tar.xz']:.1f} s | {dep_xz:.2f}x | <= 2.5x: "
        f"{'met' if dep_xz <= 2.5 else 'NOT met'} |",
        f"| `deploy --compile-tests` (tar.xz) | {t['deploy --compile-tests']:.1f} s | "
        f"`tar -xJf`: {t['tar -x tar.xz']:.1f} s | "
        f"{t['deploy --compile-tests'] / t['tar -x tar.xz']:.2f}x | |",
        f"| `deploy` (tar.zst) | {t['deploy tar.zst']:.1f} s | `tar --zstd -xf`: "
        f"{t['tar -x tar.zst']:.1f} s | {dep_zst:.2f}x | |",
        f"| `deploy --compile-tests` (tar.xz) | {t['deploy --compile-tests']:.1f} s | `tar -x` "
        f"then `compileall -j 0`: {t['tar -x tar.xz'] + t['compileall tar.xz']:.1f} s | "
        f"{t['deploy --compile-tests'] / (t['tar -x tar.xz'] + t['compileall tar.xz']):.2f}x | |",
    ]
    if "venvstacks publish" in t:
        ratio = t["venvstacks publish"] / t["publish tar.xz"]
        rows.append(
            f"| venvstacks 0.8 `publish` | {t['venvstacks publish']:.1f} s | kernelstacks "
            f"tar.xz | {ratio:.2f}x slower | |"
        )
    size_rows = [
        "| archives | size |",
        "| --- | --- |",
        *(f"| {label} | {mib(size)} |" for label, size in sizes.items()),
    ]
    return "\n".join(
        [
            "## Publish and deploy (`bench/publish.py`)",
            "",
            f"{'Two runtimes' if two else 'One runtime'}, six frameworks, two apps "
            f"({len(layers)} layers); Python {platform.python_version()}, {os.cpu_count()} "
            f"cores, measured {time.strftime('%Y-%m-%d')}, all in one run; `deploy` and "
            f"`tar -x` are medians of {len(next(iter(each.values())))} alternating rounds, "
            "each into an emptied "
            "directory after `sync`. Deploy includes "
            "verifying, unpacking, relocating and compiling bytecode (test suites only with "
            "`--compile-tests`, see docs/deploy.md); `tar -x` only unpacks "
            "(layers that would not run where they land). Archives carry no bytecode (like "
            "venvstacks'), so a deploy that leaves runnable layers cannot beat unpacking plus "
            "compiling it: the last row compares with that floor (everything compiled).",
            "",
            *rows,
            "",
            "Every round: "
            + "; ".join(f"{k} {', '.join(f'{v:.1f}' for v in vs)} s" for k, vs in each.items())
            + ". CPU time of `deploy` (all its processes, median): "
            + ", ".join(
                f"{fmt} {t[f'deploy cpu {fmt}']:.1f} s = "
                f"{t[f'deploy cpu {fmt}'] / t[f'deploy {fmt}']:.2f} cores busy on average"
                for fmt in ("tar.xz", "tar.zst")
            )
            + f" (of {os.cpu_count()}): deploy is bound by CPU, most of it compiling bytecode.",
            "",
            *size_rows,
        ]
    )


if __name__ == "__main__":
    main()
