"""Tests of the per-layer filesystem mechanics (venv, chain, native_libs, elf, scripts...).

Real parts only: pyenv interpreters as runtimes, real venvs, real uv installing small PyPI
packages, gcc building a shared library and an extension module, patchelf patching it. Layers
without PyPI packages are filled by hand (fast); the ``stack`` fixture builds real framework and
application layers with uv once per session (slow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import local_python
from kernelstacks._support.swap import new_staging_dir, swap_in
from kernelstacks._support.uv import run_uv
from kernelstacks.build.bytecode import compile_layer
from kernelstacks.build.chain import CHAIN_MODULE, write_chain
from kernelstacks.build.elf import read_elf_dynamic
from kernelstacks.build.layer_metadata import write_layer_metadata
from kernelstacks.build.native_libs import link_native_libs
from kernelstacks.build.scripts import fix_activate_scripts, fix_script_shebangs
from kernelstacks.build.state import LAYER_METADATA
from kernelstacks.build.venv import create_layer_venv, relative_to_layer, site_packages

PY = "3.12"
RUNTIME_PYTHON = local_python(PY)

pytestmark = pytest.mark.skipif(
    RUNTIME_PYTHON is None or not (RUNTIME_PYTHON.parent.parent / "include").is_dir(),
    reason="needs a prefix-installed CPython 3.12 (pyenv) as a runtime stand-in",
)

PROBE = (
    "import json, sys; print(json.dumps({'path': sys.path, 'prefix': sys.prefix, "
    "'base_prefix': sys.base_prefix, 'extra': globals().get('EXTRA')}))"
)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def runtime_dir(python: Path) -> Path:
    """The runtime layer of a prefix-installed interpreter is its prefix."""
    return python.parent.parent


def clean_env() -> dict[str, str]:
    """Our environment without anything that could make a broken chain look healthy."""
    env = dict(os.environ)
    for key in ("LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    return env


def run_python(layer: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [os.fspath(layer / "bin" / "python"), *args]
    return subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, check=check)


def probe(layer: Path, *flags: str) -> dict:
    """sys.path, sys.prefix and sys.base_prefix as seen by the layer's interpreter."""
    return json.loads(run_python(layer, *flags, "-c", PROBE).stdout)


def position(paths: list[str], target: Path) -> int:
    return paths.index(os.fspath(target))


def build_layer(
    final: Path,
    runtime_python: Path,
    lower: list[Path],
    *,
    py_version: str = PY,
    packages: tuple[str, ...] = (),
    files: dict[str, str] | None = None,
    launch_module: str | None = None,
) -> Path:
    """Build a layer the way the builder does: staging dir beside ``final``, then swap it in."""
    built = new_staging_dir(final)
    create_layer_venv(runtime_python, built)
    sp = site_packages(built, py_version)
    for rel, text in (files or {}).items():
        (sp / rel).parent.mkdir(parents=True, exist_ok=True)
        (sp / rel).write_text(text)
    if packages:
        run_uv(["pip", "install", "--python", built / "bin" / "python", *packages])
    write_chain(built, py_version, lower, final_dir=final)
    link_native_libs(built, lower, final_dir=final)
    write_layer_metadata(
        built,
        python="bin/python",
        py_version=py_version,
        base_python=relative_to_layer(final, lower[-1] / "bin" / f"python{py_version}"),
        site_dir=relative_to_layer(built, sp),
        pylib_dirs=[relative_to_layer(final, site_packages(p, py_version)) for p in lower],
        dynlib_dirs=[],
        launch_module=launch_module,
    )
    compile_layer(built, built / "bin" / "python")
    fix_activate_scripts(built, final)
    swap_in(built, final)
    fix_script_shebangs(final)
    return final


def copy_layers(src_root: Path, dest_root: Path) -> Path:
    """Copy every layer of a stack (symlinks kept as symlinks) to another parent directory."""
    dest_root.mkdir(parents=True)
    for layer in src_root.iterdir():
        if not layer.name.startswith("."):
            shutil.copytree(layer, dest_root / layer.name, symlinks=True)
    return dest_root


# --------------------------------------------------------------------------------------------
# venv creation and metadata
# --------------------------------------------------------------------------------------------


def test_site_packages_layout(tmp_path: Path) -> None:
    assert site_packages(tmp_path, "3.12") == tmp_path / "lib/python3.12/site-packages"


def test_create_layer_venv_points_home_at_runtime(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    create_layer_venv(RUNTIME_PYTHON, layer)
    cfg = dict(
        line.split(" = ", 1) for line in (layer / "pyvenv.cfg").read_text().splitlines() if line
    )
    assert cfg["home"] == os.fspath(RUNTIME_PYTHON.parent)
    assert cfg["relocatable"] == "true"
    assert (layer / "bin" / "python").is_symlink()
    assert not (layer / "bin" / "pip").exists()
    seen = probe(layer)
    assert seen["prefix"] == os.fspath(layer)
    assert seen["base_prefix"] == os.fspath(runtime_dir(RUNTIME_PYTHON))


def test_create_layer_venv_refuses_a_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("x")
    with pytest.raises(FileExistsError):
        create_layer_venv(RUNTIME_PYTHON, tmp_path)


def test_layer_metadata_is_venvstacks_compatible(tmp_path: Path) -> None:
    common = dict(
        python="bin/python",
        py_version="3.12.1",
        base_python="../cpython-3.12/bin/python3.12",
        site_dir="lib/python3.12/site-packages",
        pylib_dirs=["../framework-a/lib/python3.12/site-packages"],
        dynlib_dirs=["../framework-a/lib/python3.12/site-packages/kstest_libs"],
    )
    write_layer_metadata(tmp_path, **common, launch_module="demo", extra={"kernelstacks": 1})
    path = tmp_path / "share/venv/metadata/venvstacks_layer.json"
    assert path == tmp_path / LAYER_METADATA
    assert json.loads(path.read_text()) == {**common, "launch_module": "demo", "kernelstacks": 1}

    write_layer_metadata(tmp_path, **common, launch_module=None)
    assert "launch_module" not in json.loads(path.read_text())
    with pytest.raises(ValueError, match="relative"):
        write_layer_metadata(tmp_path, **{**common, "pylib_dirs": ["/abs"]}, launch_module=None)
    with pytest.raises(ValueError, match="override"):
        write_layer_metadata(tmp_path, **common, launch_module=None, extra={"python": "x"})


# --------------------------------------------------------------------------------------------
# chaining, with hand-filled layers (fast)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A hand-filled stack: frameworks fa, fb, sibling fc, app on [fa, fb], runtime last."""
    root = tmp_path_factory.mktemp("mini") / "stack"
    rt = runtime_dir(RUNTIME_PYTHON)
    fa = build_layer(
        root / "framework-a",
        RUNTIME_PYTHON,
        [rt],
        files={
            "mod_fa.py": "X = 'fa'\n",
            "shadow.py": "WHO = 'fa'\n",
            "fa_extra.pth": "fa_extra\n",
            "fa_extra/mod_fa_extra.py": "X = 'fa_extra'\n",
        },
    )
    fb = build_layer(
        root / "framework-b",
        RUNTIME_PYTHON,
        [rt],
        files={"mod_fb.py": "X = 'fb'\n", "shadow.py": "WHO = 'fb'\n"},
    )
    fc = build_layer(root / "framework-c", RUNTIME_PYTHON, [rt], files={"mod_fc.py": "X = 1\n"})
    app = build_layer(
        root / "app-demo",
        RUNTIME_PYTHON,
        [fa, fb, rt],
        files={
            "mod_app.py": "X = 'app'\n",
            # a .pth of the app importing a package that only a lower layer provides
            "app_hook.pth": "import mod_fa, builtins; builtins.APP_HOOK = mod_fa.X\n",
            # a path entry of the app must stay ahead of the lower layers
            "app_paths.pth": "app_extra\n",
            "app_extra/mod_app_extra.py": "X = 'app_extra'\n",
        },
        launch_module="mod_app",
    )
    return {"root": root, "runtime": rt, "a": fa, "b": fb, "c": fc, "app": app}


def test_chain_order_is_app_frameworks_runtime(mini: dict[str, Path]) -> None:
    seen = probe(mini["app"])
    path = seen["path"]
    app_sp, a_sp, b_sp = (site_packages(mini[k], PY) for k in ("app", "a", "b"))
    rt_sp = site_packages(mini["runtime"], PY)
    order = [
        position(path, app_sp),
        position(path, app_sp / "app_extra"),
        position(path, a_sp),
        position(path, a_sp / "fa_extra"),
        position(path, b_sp),
        position(path, rt_sp),
    ]
    assert order == sorted(order)
    assert path[-1] == os.fspath(rt_sp)
    assert len(path) == len(set(path))
    assert seen["base_prefix"] == os.fspath(mini["runtime"])


def test_chain_runs_lower_pth_files_and_supports_cross_layer_pth(mini: dict[str, Path]) -> None:
    code = (
        "import builtins, mod_fa_extra, mod_app_extra, shadow, mod_fb; "
        "print(builtins.APP_HOOK, mod_fa_extra.X, mod_app_extra.X, shadow.WHO, mod_fb.X)"
    )
    result = run_python(mini["app"], "-c", code)
    assert result.stdout.split() == ["fa", "fa_extra", "app_extra", "fa", "fb"]
    assert "Error processing" not in result.stderr


def test_chain_works_in_isolated_mode(mini: dict[str, Path]) -> None:
    result = run_python(mini["app"], "-I", "-c", "import mod_fa, mod_fb; print(mod_fa.X)")
    assert result.stdout.strip() == "fa"


def test_sibling_layer_is_invisible(mini: dict[str, Path]) -> None:
    result = run_python(mini["app"], "-c", "import mod_fc", check=False)
    assert result.returncode != 0
    assert "No module named 'mod_fc'" in result.stderr
    assert os.fspath(site_packages(mini["c"], PY)) not in probe(mini["app"])["path"]


def test_framework_layer_sees_only_its_runtime(mini: dict[str, Path]) -> None:
    path = probe(mini["a"])["path"]
    assert path[-1] == os.fspath(site_packages(mini["runtime"], PY))
    assert os.fspath(site_packages(mini["b"], PY)) not in path


def test_chain_module_is_compiled(mini: dict[str, Path]) -> None:
    cache = site_packages(mini["app"], PY) / "__pycache__"
    assert list(cache.glob(f"{CHAIN_MODULE}.cpython-312.pyc"))
    assert list(cache.glob("mod_app.cpython-312.pyc"))


def test_user_sitecustomize_still_runs_in_any_layer(mini: dict[str, Path], tmp_path: Path) -> None:
    root = copy_layers(mini["root"], tmp_path / "stack")
    fa_sc = site_packages(root / "framework-a", PY) / "sitecustomize.py"
    fa_sc.write_text("import builtins, mod_fb; builtins.SITECUSTOMIZE = 'fa:' + mod_fb.X\n")
    code = "import builtins; print(builtins.SITECUSTOMIZE)"
    assert run_python(root / "app-demo", "-c", code).stdout.strip() == "fa:fb"
    app_sc = site_packages(root / "app-demo", PY) / "sitecustomize.py"
    app_sc.write_text("import builtins, mod_fa; builtins.SITECUSTOMIZE = 'app:' + mod_fa.X\n")
    assert run_python(root / "app-demo", "-I", "-c", code).stdout.strip() == "app:fa"


def test_missing_lower_layer_fails_loudly(mini: dict[str, Path], tmp_path: Path) -> None:
    root = copy_layers(mini["root"], tmp_path / "stack")
    shutil.rmtree(root / "framework-a")
    for flags in ((), ("-I",)):
        result = run_python(root / "app-demo", *flags, "-c", "print('started')", check=False)
        assert result.returncode != 0
        assert "started" not in result.stdout
        assert f"missing layer: {root / 'framework-a'}" in result.stderr
        assert "Traceback" not in result.stderr


def test_write_chain_rejects_wrong_runtime_and_missing_layers(mini: dict[str, Path]) -> None:
    app, rt = mini["app"], mini["runtime"]
    with pytest.raises(ValueError, match="runtime"):
        write_chain(app, PY, [rt, mini["a"]])
    with pytest.raises(FileNotFoundError):
        write_chain(app, PY, [app.parent / "framework-missing", rt])


def test_chain_is_idempotent_on_311_where_pth_runs_twice(tmp_path: Path) -> None:
    python311 = local_python("3.11")
    if python311 is None or not (python311.parent.parent / "include").is_dir():
        pytest.skip("needs a prefix-installed CPython 3.11")
    rt = runtime_dir(python311)
    root = tmp_path / "stack"
    fa = build_layer(
        root / "framework-a",
        python311,
        [rt],
        py_version="3.11",
        files={"mod_fa311.py": "X = 1\n", "fa.pth": "fa_extra\n", "fa_extra/.keep": ""},
    )
    counter = "import builtins; builtins.PTH_RUNS = getattr(builtins, 'PTH_RUNS', 0) + 1\n"
    app = build_layer(
        root / "app", python311, [fa, rt], py_version="3.11", files={"count.pth": counter}
    )
    code = (
        f"import builtins, json, sys, mod_fa311, {CHAIN_MODULE} as c; "
        "print(json.dumps([builtins.PTH_RUNS, sys.path, c.LOWER_SITE_DIRS]))"
    )
    runs, path, lower = json.loads(run_python(app, "-c", code).stdout)
    assert runs == 2, "this interpreter no longer processes venv .pth files twice"
    assert len(path) == len(set(path))
    assert [path.count(p) for p in lower] == [1, 1]
    assert path.count(os.fspath(site_packages(fa, "3.11") / "fa_extra")) == 1


# --------------------------------------------------------------------------------------------
# a real stack built with uv (slow)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """framework-a (six), framework-b (attrs), sibling framework-c (idna), app on [a, b]."""
    root = tmp_path_factory.mktemp("uvstack") / "stack"
    rt = runtime_dir(RUNTIME_PYTHON)
    fa = build_layer(root / "framework-a", RUNTIME_PYTHON, [rt], packages=("six",))
    fb = build_layer(root / "framework-b", RUNTIME_PYTHON, [rt], packages=("attrs",))
    fc = build_layer(root / "framework-c", RUNTIME_PYTHON, [rt], packages=("idna",))
    app = build_layer(
        root / "app-demo", RUNTIME_PYTHON, [fa, fb, rt], packages=("pyflakes",), launch_module="x"
    )
    return {"root": root, "runtime": rt, "a": fa, "b": fb, "c": fc, "app": app}


@pytest.mark.slow
def test_real_stack_imports_from_the_right_layers(stack: dict[str, Path]) -> None:
    code = (
        "import json, sys, six, attr, pyflakes; "
        "print(json.dumps([six.__file__, attr.__file__, pyflakes.__file__, sys.path]))"
    )
    for flags in ((), ("-I",)):
        six_file, attr_file, pyflakes_file, path = json.loads(
            run_python(stack["app"], *flags, "-c", code).stdout
        )
        assert six_file.startswith(os.fspath(stack["a"]) + "/")
        assert attr_file.startswith(os.fspath(stack["b"]) + "/")
        assert pyflakes_file.startswith(os.fspath(stack["app"]) + "/")
        sps = [site_packages(stack[k], PY) for k in ("app", "a", "b", "runtime")]
        assert [position(path, sp) for sp in sps] == sorted(position(path, sp) for sp in sps)
        assert len(path) == len(set(path))
    result = run_python(stack["app"], "-c", "import idna", check=False)
    assert "No module named 'idna'" in result.stderr
    assert list((site_packages(stack["a"], PY) / "__pycache__").glob("six.cpython-312.pyc"))


@pytest.mark.slow
def test_real_stack_metadata(stack: dict[str, Path]) -> None:
    data = json.loads((stack["app"] / LAYER_METADATA).read_text())
    assert data["python"] == "bin/python"
    assert data["site_dir"] == "lib/python3.12/site-packages"
    assert data["pylib_dirs"][:2] == [
        "../framework-a/lib/python3.12/site-packages",
        "../framework-b/lib/python3.12/site-packages",
    ]
    assert data["launch_module"] == "x"
    base = (stack["app"] / data["base_python"]).resolve()
    assert base == RUNTIME_PYTHON.resolve()
    assert "launch_module" not in json.loads((stack["a"] / LAYER_METADATA).read_text())


@pytest.mark.slow
def test_real_stack_console_script_after_swap(stack: dict[str, Path], tmp_path: Path) -> None:
    script = stack["app"] / "bin" / "pyflakes"
    assert "~new-" not in script.read_text()
    ok = subprocess.run([script, "--version"], env=clean_env(), capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    moved = copy_layers(stack["root"], tmp_path / "moved" / "stack")
    result = subprocess.run(
        [moved / "app-demo" / "bin" / "pyflakes", "--version"],
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_real_stack_moved_and_broken(stack: dict[str, Path], tmp_path: Path) -> None:
    moved = copy_layers(stack["root"], tmp_path / "a" / "b" / "stack")
    code = "import six, attr; print(six.__file__); print(attr.__file__)"
    six_file, attr_file = run_python(moved / "app-demo", "-I", "-c", code).stdout.split()
    assert six_file.startswith(os.fspath(moved / "framework-a") + "/")
    assert attr_file.startswith(os.fspath(moved / "framework-b") + "/")
    shutil.rmtree(moved / "framework-a")
    result = run_python(moved / "app-demo", "-c", "import six", check=False)
    assert result.returncode != 0
    assert f"missing layer: {moved / 'framework-a'}" in result.stderr


@pytest.mark.slow
def test_uv_absolute_shebangs_are_fixed_after_rename(tmp_path: Path) -> None:
    final = tmp_path / "app-scripts"
    built = new_staging_dir(final)
    create_layer_venv(RUNTIME_PYTHON, built)
    cfg = built / "pyvenv.cfg"
    cfg.write_text(
        "".join(ln for ln in cfg.read_text().splitlines(True) if "relocatable" not in ln)
    )
    run_uv(["pip", "install", "--python", built / "bin" / "python", "pyflakes"])
    assert (built / "bin" / "pyflakes").read_text().startswith(f"#!{built}/bin/python")
    fix_activate_scripts(built, final)
    swap_in(built, final)
    activate = (final / "bin" / "activate").read_text()
    assert os.fspath(built) not in activate and f'VIRTUAL_ENV="{final}"' in activate
    with pytest.raises(FileNotFoundError):  # the shebang's interpreter is gone
        subprocess.run([final / "bin" / "pyflakes", "--version"], capture_output=True)
    assert fix_script_shebangs(final) == ["pyflakes"]
    ok = subprocess.run([final / "bin" / "pyflakes", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    moved = final.rename(tmp_path / "app-moved")
    fix_script_shebangs(moved)
    activate = (moved / "bin" / "activate").read_text()
    assert os.fspath(final) not in activate and f'VIRTUAL_ENV="{moved}"' in activate
    assert "(app-moved) " in activate
    sourced = subprocess.run(
        ["bash", "-c", f". {moved}/bin/activate && python -c 'import sys; print(sys.prefix)'"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout.strip() == os.fspath(moved)


# --------------------------------------------------------------------------------------------
# scripts
# --------------------------------------------------------------------------------------------

SCRIPT_BODY = "import sys\nprint(sys.prefix)\n"


def test_fix_script_shebangs_forms(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    create_layer_venv(RUNTIME_PYTHON, layer)
    scripts = {
        "plain": "#!/gone/build/bin/python3.12\n" + SCRIPT_BODY,
        "args": "#!/gone/build/bin/python -E\n" + SCRIPT_BODY,
        "long": "#!/bin/sh\n'''exec' '/gone/b uild/bin/python' \"$0\" \"$@\"\n' '''\n"
        + SCRIPT_BODY,
        "env": "#!/usr/bin/env python3\n" + SCRIPT_BODY,
        "shell": "#!/bin/sh\necho shell\n",
    }
    for name, text in scripts.items():
        (layer / "bin" / name).write_text(text)
        (layer / "bin" / name).chmod(0o755)
    assert fix_script_shebangs(layer) == ["args", "long", "plain"]
    assert fix_script_shebangs(layer) == []
    assert (layer / "bin" / "env").read_text() == scripts["env"]
    assert (layer / "bin" / "shell").read_text() == scripts["shell"]
    moved = tmp_path / "moved"
    layer.rename(moved)
    for name in ("plain", "args", "long"):
        out = subprocess.run([moved / "bin" / name], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == os.fspath(moved)
        assert (moved / "bin" / name).stat().st_mode & 0o111


# --------------------------------------------------------------------------------------------
# native libraries across layers
# --------------------------------------------------------------------------------------------

LIB_C = "int kstest_answer(void) { return 42; }\n"
EXT_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int kstest_answer(void);
static PyObject *answer(PyObject *self, PyObject *args) {
    return PyLong_FromLong(kstest_answer());
}
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "NAME", NULL, -1, methods};
PyMODINIT_FUNC PyInit_NAME(void) { return PyModule_Create(&module); }
"""


def gcc(*args: str | os.PathLike[str]) -> None:
    subprocess.run(["gcc", *map(os.fspath, args)], check=True, capture_output=True, text=True)


def compile_extension(name: str, dest: Path, lib_dir: Path, *ldflags: str) -> Path:
    """Build extension ``name`` linking libkstest with the runtime's headers and EXT_SUFFIX."""
    query = "import json, sysconfig as s; print(json.dumps([s.get_paths()['include'], "
    query += "s.get_config_var('EXT_SUFFIX')]))"
    out = subprocess.run([RUNTIME_PYTHON, "-c", query], capture_output=True, text=True, check=True)
    include, suffix = json.loads(out.stdout)
    source = dest.parent / f"{name}.c"
    source.write_text(EXT_C.replace("NAME", name))
    target = dest / f"{name}{suffix}"
    gcc(
        "-shared",
        "-fPIC",
        f"-I{include}",
        source,
        f"-L{lib_dir}",
        "-lkstest",
        *ldflags,
        "-o",
        target,
    )
    source.unlink()
    return target


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_extension_loads_library_of_lower_layer(tmp_path: Path) -> None:
    root = tmp_path / "stack"
    rt = runtime_dir(RUNTIME_PYTHON)
    fa = build_layer(root / "framework-a", RUNTIME_PYTHON, [rt])
    libs = site_packages(fa, PY) / "kstest_libs"
    libs.mkdir()
    (tmp_path / "lib.c").write_text(LIB_C)
    gcc(
        "-shared",
        "-fPIC",
        "-Wl,-soname,libkstest.so",
        tmp_path / "lib.c",
        "-o",
        libs / "libkstest.so",
    )
    app = build_layer(root / "app", RUNTIME_PYTHON, [fa, rt])
    sp = site_packages(app, PY)
    ext = compile_extension("kstestext", sp, libs)
    old_style = compile_extension(
        "kstestold", sp, libs, "-Wl,--disable-new-dtags", "-Wl,-rpath,/nonexistent"
    )
    hardlink = tmp_path / "uv-cache-copy.so"
    os.link(ext, hardlink)
    code = "import kstestext, kstestold; print(kstestext.answer() + kstestold.answer())"

    before = run_python(app, "-c", code, check=False)
    assert before.returncode != 0 and "libkstest.so" in before.stderr

    patched = link_native_libs(app, [fa, rt])
    assert sorted(patched) == sorted(p.relative_to(app).as_posix() for p in (ext, old_style))
    expected = "$ORIGIN/../../../../framework-a/lib/python3.12/site-packages/kstest_libs"
    assert read_elf_dynamic(ext).runpath == (expected,)
    assert read_elf_dynamic(old_style).runpath is None
    assert read_elf_dynamic(old_style).rpath == ("/nonexistent", expected)
    printed = subprocess.run(
        ["patchelf", "--print-rpath", ext], capture_output=True, text=True, check=True
    )
    assert printed.stdout.strip() == expected
    assert read_elf_dynamic(hardlink).runpath is None, "patched a hard-linked inode in place"
    assert "libkstest.so" in read_elf_dynamic(ext).needed
    assert run_python(app, "-c", code).stdout.strip() == "84"
    assert link_native_libs(app, [fa, rt]) == []

    moved = tmp_path / "x" / "y" / "stack"
    moved.parent.mkdir(parents=True)
    root.rename(moved)
    assert run_python(moved / "app", "-I", "-c", code).stdout.strip() == "84"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_dynlib_exclude_keeps_a_lower_library_from_being_linked(tmp_path: Path) -> None:
    """Two packages of a lower layer ship a libkstest.so (1 and 2); the excluded one is never
    linked, whichever the directory walk meets first; excluding both links neither."""
    rt = runtime_dir(RUNTIME_PYTHON)
    fa = build_layer(tmp_path / "stack" / "framework-a", RUNTIME_PYTHON, [rt])
    sp = site_packages(fa, PY)
    for package, answer in (("pkga", 1), ("pkgb", 2)):
        (sp / package / "libs").mkdir(parents=True)
        source = tmp_path / f"{package}.c"
        source.write_text(LIB_C.replace("42", str(answer)))
        target = sp / package / "libs" / "libkstest.so"
        gcc("-shared", "-fPIC", "-Wl,-soname,libkstest.so", source, "-o", target)
    code = "import kstestext; print(kstestext.answer())"
    answers = {}
    for number, excluded in enumerate((["pkga/**/libkstest.so"], ["pkgb/libs/*"], ["libkstest.*"])):
        app = build_layer(tmp_path / "stack" / f"app-{number}", RUNTIME_PYTHON, [fa, rt])
        compile_extension("kstestext", site_packages(app, PY), sp / "pkga" / "libs")
        patched = link_native_libs(app, [fa, rt], dynlib_exclude={fa: excluded})
        result = run_python(app, "-c", code, check=False)
        answers[excluded[0]] = (result.stdout.strip() or "not loaded", len(patched))
    assert answers == {
        "pkga/**/libkstest.so": ("2", 1),
        "pkgb/libs/*": ("1", 1),
        "libkstest.*": ("not loaded", 0),
    }


DYNLIB_PATTERNS = ["libpng16.*", "PIL/**/libpng16.*", "*", "**", "lib[!a]?.so*", "a/*/c.so"]
DYNLIB_PATHS = [
    "/l/site-packages/PIL/.libs/libpng16.so.16",
    "/l/site-packages/PIL/libpng16.so",
    "/l/site-packages/other/libpng16.so",
    "/l/site-packages/other/xlibpng16.so",
    "/l/site-packages/libab.so.1",
    "/l/site-packages/liba.so",
    "/l/site-packages/libxy.so.2",
    "/l/a/b/c.so",
    "/l/a/b/x/c.so",
]


@pytest.mark.skipif(local_python("3.13") is None, reason="needs CPython 3.13 (glob.translate)")
def test_dynlib_exclude_patterns_match_like_venvstacks() -> None:
    """venvstacks matches ``glob.translate("/" + pattern, recursive=True, include_hidden=True)``
    against the end of the path; Python 3.13 has glob.translate, so it is the oracle here."""
    from kernelstacks.build.native_libs import exclusion_pattern

    oracle = (
        "import glob, json, re, sys; pats, paths = json.loads(sys.argv[1]); print(json.dumps("
        "[[bool(re.search(glob.translate('/' + p, recursive=True, include_hidden=True), x))"
        " for x in paths] for p in pats]))"
    )
    args = json.dumps([DYNLIB_PATTERNS, DYNLIB_PATHS])
    proc = subprocess.run(
        [local_python("3.13"), "-I", "-c", oracle, args], capture_output=True, text=True, check=True
    )
    ours = [[bool(exclusion_pattern(p).search(x)) for x in DYNLIB_PATHS] for p in DYNLIB_PATTERNS]
    assert ours == json.loads(proc.stdout)


def test_read_elf_dynamic_ignores_non_elf(tmp_path: Path) -> None:
    (tmp_path / "x.so").write_text("not an ELF file")
    assert read_elf_dynamic(tmp_path / "x.so") is None
    info = read_elf_dynamic(RUNTIME_PYTHON.resolve())
    assert info is not None and any(n.startswith("libc.so") for n in info.needed)


def test_compile_layer_writes_bytecode(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    create_layer_venv(RUNTIME_PYTHON, layer)
    sp = site_packages(layer, PY)
    (sp / "pkg").mkdir()
    (sp / "pkg" / "__init__.py").write_text("X = 1\n")
    (sp / "broken.py").write_text("def (:\n")
    compile_layer(layer, layer / "bin" / "python")
    assert list((sp / "pkg" / "__pycache__").glob("__init__.cpython-312.pyc"))
    assert not list((sp / "__pycache__").glob("broken.*"))
