"""``%venvstacks`` with a mistyped subcommand: one error line that suggests the closest name."""

from __future__ import annotations

import pytest

from kernelstacks_kernel.display import VenvstacksError
from kernelstacks_kernel.magics import venvstacks


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("pakages", "packages"), ("biuld", "build"), ("expore", "explore"), ("dif", "diff")],
)
def test_a_typo_names_the_closest_subcommand(typed: str, meant: str) -> None:
    with pytest.raises(VenvstacksError) as caught:
        venvstacks(typed)
    message = str(caught.value)
    assert message.startswith(f"unknown subcommand '{typed}'; did you mean '%venvstacks {meant}'?")
    assert "\n" not in message and message.count("did you mean") == 1
    assert "(known: add, build," in message  # every subcommand is still listed


def test_nothing_close_lists_the_subcommands_only() -> None:
    with pytest.raises(VenvstacksError) as caught:
        venvstacks("frobnicate --now")
    assert "did you mean" not in str(caught.value)
    assert str(caught.value).startswith("unknown subcommand 'frobnicate' (known: ")
