"""Kernel logos that tell stacks apart: three stacked layers in colours of the stack and the app.

JupyterLab's launcher shows every kernel's logo; identical logos for every stack make the cards
hard to tell apart. The bottom (runtime) bar is a fixed blue, the middle (frameworks) bar takes a
hue derived from the stack name, the top (application) bar one derived from the app name. Logos
are written as SVG and as 32/64 px PNGs (a minimal PNG encoder: no imaging library needed). A
kernel's own logo from ``[tool.kernelstacks.kernelspec.<app>] logo`` replaces them.
"""

from __future__ import annotations

import colorsys
import hashlib
import shutil
import struct
import zlib
from pathlib import Path

from kernelstacks._support.errors import KernelstacksError

RGB = tuple[int, int, int]
RUNTIME_COLOUR: RGB = (0x3B, 0x6E, 0xA5)
#: (x, y, width, height) of the three bars on a 64x64 canvas: runtime, frameworks, application.
BARS = ((6, 40, 52, 16), (12, 24, 40, 14), (20, 8, 24, 14))
LOGO_FILES = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


def hue_colour(name: str, lightness: float = 0.55, saturation: float = 0.55) -> RGB:
    """A stable colour for a name (the hue comes from its hash)."""
    hue = int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big") / 65536
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return (round(r * 255), round(g * 255), round(b * 255))


def palette(stack: str, app: str) -> tuple[RGB, RGB, RGB]:
    """Colours of the runtime, framework and application bars."""
    return RUNTIME_COLOUR, hue_colour(f"stack:{stack}"), hue_colour(f"app:{app}", 0.45)


def svg(colours: tuple[RGB, RGB, RGB]) -> str:
    """The SVG logo."""
    rects = "".join(
        f'  <rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3" fill="#{r:02x}{g:02x}{b:02x}"/>\n'
        for (x, y, w, h), (r, g, b) in zip(BARS, colours, strict=True)
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">\n'
        f"{rects}</svg>\n"
    )


def png(size: int, colours: tuple[RGB, RGB, RGB]) -> bytes:
    """The logo as an RGBA PNG of ``size`` x ``size`` pixels (bars scaled from 64 px)."""
    scale = size / 64
    rows = []
    for py in range(size):
        row = bytearray([0])  # filter type: none
        for px in range(size):
            pixel = (0, 0, 0, 0)
            for (x, y, w, h), colour in zip(BARS, colours, strict=True):
                if (
                    x * scale <= px + 0.5 < (x + w) * scale
                    and y * scale <= py + 0.5 < (y + h) * scale
                ):
                    pixel = (*colour, 255)
            row += bytes(pixel)
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def write_logos(target: Path, stack: str, app: str, custom: Path | None = None) -> None:
    """Write the kernel's logo files into its kernelspec directory."""
    if custom is not None:
        if not custom.is_file():
            raise KernelstacksError(f"kernel logo {custom} does not exist")
        if custom.suffix.lower() == ".svg":
            shutil.copyfile(custom, target / "logo-svg.svg")
        elif custom.suffix.lower() == ".png":
            for name in ("logo-32x32.png", "logo-64x64.png"):
                shutil.copyfile(custom, target / name)
        else:
            raise KernelstacksError(f"kernel logo {custom} must be an .svg or a .png file")
        return
    colours = palette(stack, app)
    (target / "logo-svg.svg").write_text(svg(colours), encoding="utf-8")
    (target / "logo-32x32.png").write_bytes(png(32, colours))
    (target / "logo-64x64.png").write_bytes(png(64, colours))
