"""Property test: the loader either loads a document or raises our SpecError, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernelstacks._support.errors import SpecError
from kernelstacks.spec import load_spec

KEYS = [
    "name",
    "requirements",
    "python_implementation",
    "runtime",
    "frameworks",
    "launch_module",
    "support_modules",
    "platforms",
    "versioned",
    "linux_target",
    "macosx_target",
    "dynlib_exclude",
    "priority_indexes",
    "package_indexes",
    "index_overrides",
    "fully_versioned_name",
    "build_requirements",
    "bogus",
]
NAMES = st.sampled_from(["rt", "fw", "app", "a", "b", "", "x y", "cpython@3.11", "\x00"])
scalars = st.one_of(
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    NAMES,
    st.sampled_from(["cpython@3.11", "cpython@3.12.1", "six", "numpy>=1", "linux_x86_64", "a.py"]),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)
layer = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)
document = st.dictionaries(
    st.sampled_from(["runtimes", "frameworks", "applications", "tool", "other"]),
    st.one_of(st.lists(layer, max_size=3), values, st.just({"kernelstacks": {"name": "s"}})),
    max_size=4,
)


def _check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "venvstacks.toml"
        path.write_text(text, encoding="utf-8")
        (Path(tmp) / "a.py").write_text("")
        try:
            load_spec(path)
        except SpecError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.file == str(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_random_documents(doc: dict) -> None:
    try:
        text = tomlkit.dumps(doc)
    except Exception:  # tomlkit cannot express every generated value; not our loader's concern
        return
    _check(text)


VALID = """
[[runtimes]]
name = "rt"
python_implementation = "cpython@3.11"
requirements = ["numpy"]

[[frameworks]]
name = "fw"
runtime = "rt"
requirements = ["scipy"]

[[applications]]
name = "app"
launch_module = "a.py"
frameworks = ["fw"]
requirements = []
"""


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 6), st.text(max_size=4)), max_size=4
    )
)
def test_mutated_documents(edits: list[tuple[int, int, str]]) -> None:
    text = VALID
    for pos, cut, insert in edits:
        pos = min(pos, len(text))
        text = text[:pos] + insert + text[pos + cut :]
    _check(text)
