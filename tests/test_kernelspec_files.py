"""What a kernelspec directory holds, without building a stack: launcher, logos, settings.

The launcher is run for real (``/bin/sh``) against fake layers whose "interpreter" records how it
was started, so the tests see exactly what a Jupyter server would start and with which
environment.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from helpers import write_spec
from kernelstacks._support.errors import SpecError
from kernelstacks.jupyter.launcher import launcher_script, pip_names, pip_script
from kernelstacks.jupyter.logos import palette, png, svg
from kernelstacks.spec import load_spec

RECORDER = """#!/bin/sh
{{
  echo "pid=$$"
  echo "args=$*"
  echo "PATH=$PATH"
  echo "PYTHONPATH=$PYTHONPATH"
  echo "JUPYTER_PATH=$JUPYTER_PATH"
  echo "KERNEL_DIR=$KERNELSTACKS_KERNEL_DIR"
}} > {out}
"""


def fake_stack(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    """app-x on framework-y on rt, each with a recording ``bin/python``(3)."""
    layers = [tmp_path / "_build" / n for n in ("app-x", "framework-y", "rt")]
    for layer in layers:
        (layer / "bin").mkdir(parents=True)
        for name in ("python", "python3"):
            script = layer / "bin" / name
            script.write_text(RECORDER.format(out=tmp_path / f"{layer.name}.{name}.txt"))
            script.chmod(0o755)
    spec_dir = tmp_path / "kernels" / "kernelstacks-s-x"
    spec_dir.mkdir(parents=True)
    return spec_dir, layers, layers[0] / "bin" / "python"


def run_launcher(spec_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [str(spec_dir / "kernelstacks-launch"), "-f", "/run/kernel-1.json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, f"spawned={proc.pid}\n{out}", err
    )


def recorded(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_launcher_extends_the_environment_and_execs_the_layer(tmp_path: Path) -> None:
    spec_dir, layers, python = fake_stack(tmp_path)
    jupyter_dirs = [str(layers[1] / "share" / "jupyter")]
    text = launcher_script("kernelstacks-s-x", spec_dir, python, layers, jupyter_dirs, ["-Xa=b"])
    (spec_dir / "kernelstacks-launch").write_text(text)
    (spec_dir / "kernelstacks-launch").chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/srv/site"}
    proc = run_launcher(spec_dir, env)
    assert proc.returncode == 0, proc.stderr
    seen = recorded(tmp_path / "app-x.python.txt")
    # exec'd, not spawned: the interpreter has the pid Jupyter started (interrupts reach it)
    assert seen["pid"] == proc.stdout.split("\n", 1)[0].split("=")[1]
    assert seen["args"] == "-Xa=b -m kernelstacks_kernel.launch -f /run/kernel-1.json"
    bins = [str(spec_dir / "bin"), *(f"{layer}/bin" for layer in layers)]
    assert seen["PATH"] == ":".join([*bins, "/usr/bin", "/bin"])
    assert seen["PYTHONPATH"] == f"{spec_dir / 'pylib'}:/srv/site"  # extended, not replaced
    assert seen["JUPYTER_PATH"] == jupyter_dirs[0]  # nothing to extend: no empty entry
    assert seen["KERNEL_DIR"] == str(spec_dir)

    # a missing lower layer: the layer's Python would refuse to start, so the fallback kernel
    # runs on the first Python found (here the runtime's)
    os.rename(layers[1], tmp_path / "away")
    proc = run_launcher(spec_dir, {"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    seen = recorded(tmp_path / "rt.python3.txt")
    assert seen["args"] == "-m kernelstacks_kernel.fallback -f /run/kernel-1.json"
    assert seen["PYTHONPATH"] == str(spec_dir / "pylib")


def test_pip_commands_run_the_layers_python(tmp_path: Path) -> None:
    assert pip_names("3.12.1") == ["pip", "pip3", "pip3.12"]
    script = tmp_path / "pip"
    script.write_text(pip_script(Path("/opt/my stack/app-x/bin/python")))
    assert "exec '/opt/my stack/app-x/bin/python' -m pip \"$@\"" in script.read_text()


def png_pixels(data: bytes) -> tuple[int, list[bytes]]:
    """Size and raw rows of an RGBA PNG written by :func:`png` (checks its structure)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(
            kind + body
        )
        chunks[kind] = body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, depth, colour) == (height, 8, 6)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 4 * width
    return width, [raw[i * stride + 1 : (i + 1) * stride] for i in range(height)]


def test_logos_tell_stacks_apart() -> None:
    one, two = palette("science", "lab"), palette("ml", "lab")
    assert one[0] == two[0] and one[1] != two[1]  # same runtime blue, stack-coloured middle
    assert palette("science", "lab")[2] != palette("science", "etl")[2]
    size, rows = png_pixels(png(64, one))
    assert size == 64
    middle = rows[30][32 * 4 : 32 * 4 + 4]  # inside the framework bar
    assert tuple(middle) == (*one[1], 255)
    assert tuple(rows[0][:4]) == (0, 0, 0, 0)  # transparent corner
    assert png_pixels(png(32, one))[0] == 32
    assert svg(one).count("<rect") == 3 and "#{:02x}{:02x}{:02x}".format(*one[1]) in svg(one)


KERNEL_SPEC = """
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.12"
requirements = []

[[applications]]
name = "lab"
launch_module = "lab.py"
runtime = "rt"
requirements = ["ipykernel"]

[tool.kernelstacks.kernelspec.lab]
"""


def test_kernel_settings_are_read(tmp_path: Path) -> None:
    settings = (
        'display_name = "Lab (GPU)"\nlogo = "lab.svg"\nenv = { OMP_NUM_THREADS = "4" }\n'
        'interrupt_mode = "message"\n'
    )
    spec = write_spec(tmp_path, KERNEL_SPEC + settings, modules=("lab.py", "lab.svg"))
    stack = load_spec(spec)
    assert stack.settings["kernelspec"]["lab"]["interrupt_mode"] == "message"


@pytest.mark.parametrize(
    ("settings", "needles", "key"),
    [
        ('display_nme = "x"', ["unknown key 'display_nme'", "did you mean 'display_name'"], None),
        ('interrupt_mode = "sigint"', ['must be "signal" or "message"'], "interrupt_mode"),
        ("env = { PATH = '/x' }", ["'PATH' is set by kernelstacks"], "PATH"),
        ('env = ["A=1"]', ["must be a table of strings"], "env"),
        ('logo = "nope.svg"', ["logo file", "does not exist"], "logo"),
        ('logo = "lab.py"', ["must be an .svg or a .png"], "logo"),
        ("display_name = 3", ["must be a string"], "display_name"),
    ],
)
def test_kernel_settings_problems_name_the_table_and_key(
    tmp_path: Path, settings: str, needles: list[str], key: str | None
) -> None:
    spec = write_spec(tmp_path, KERNEL_SPEC + settings + "\n", modules=("lab.py",))
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    problems = [str(p) for p in info.value.problems]
    assert any(all(n in p for n in needles) for p in problems), problems
    assert all("[tool.kernelstacks.kernelspec.lab]" in p for p in problems), problems
    if key is not None:
        assert any(p.key == key for p in info.value.problems)


def test_kernel_settings_for_an_unknown_app(tmp_path: Path) -> None:
    body = KERNEL_SPEC.replace("kernelspec.lab]", "kernelspec.labb]") + 'display_name = "x"\n'
    spec = write_spec(tmp_path, body, modules=("lab.py",))
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert "no application named 'labb'" in str(info.value) and "did you mean 'lab'" in str(
        info.value
    )
