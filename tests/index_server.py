"""Real package indexes for tests: PEP 503 simple indexes served on 127.0.0.1 by a thread.

Each :class:`LocalIndex` holds wheels built here (pure-Python, ``py3-none-any``) whose module
records which index it came from, so a test can tell by importing or by reading a lock which
index uv used. An index may require HTTP basic auth; every request is recorded so a test can
also see that uv asked the index it should have asked.
"""

from __future__ import annotations

import base64
import hashlib
import html
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name


def build_wheel(
    directory: Path, name: str, version: str, *, tag: str, requires: tuple[str, ...] = ()
) -> Path:
    """Write ``<name>-<version>-py3-none-any.whl``: one module saying its version and ``tag``."""
    dist = canonicalize_name(name).replace("-", "_")
    module = dist
    info = f"{dist}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\nINDEX = {tag!r}\n",
        f"{info}/METADATA": "\n".join(metadata) + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: kernelstacks-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={_b64_digest(text.encode())},{len(text.encode())}"
        for path, text in files.items()
    ]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(zipfile.ZipInfo(member, (2020, 1, 1, 0, 0, 0)), text)
    return path


def _b64_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass
class LocalIndex:
    """A simple index of wheels in ``root``, served at :attr:`url` while :meth:`serving`."""

    root: Path
    tag: str
    credentials: tuple[str, str] | None = None
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        (self.root / "files").mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The index URL (``/simple/``) to put in ``[[tool.uv.index]]``."""
        return f"http://127.0.0.1:{self.port}/simple/"

    def add(self, name: str, version: str, *, requires: tuple[str, ...] = ()) -> Path:
        """Publish a wheel of ``name`` ``version`` whose module records this index's tag."""
        return build_wheel(self.root / "files", name, version, tag=self.tag, requires=requires)

    def projects(self) -> dict[str, list[Path]]:
        """Published wheels by normalised project name."""
        found: dict[str, list[Path]] = {}
        for wheel in sorted((self.root / "files").glob("*.whl")):
            found.setdefault(canonicalize_name(wheel.name.split("-")[0]), []).append(wheel)
        return found

    @contextmanager
    def serving(self) -> Iterator[LocalIndex]:
        """Serve the index on 127.0.0.1 (a free port) from a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def _handler_for(index: LocalIndex) -> type[BaseHTTPRequestHandler]:
    """A request handler serving ``index``: project list, project pages, wheel files."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads :attr:`LocalIndex.requests` instead."""

        def do_HEAD(self) -> None:
            self._serve(with_body=False)

        def do_GET(self) -> None:
            self._serve(with_body=True)

        def _serve(self, *, with_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if not self._authorised():
                index.refused.append(path)
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="kernelstacks-tests"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            index.requests.append(path)
            body, kind = self._content(path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def _authorised(self) -> bool:
            if index.credentials is None:
                return True
            user, password = index.credentials
            expected = base64.b64encode(f"{user}:{password}".encode()).decode()
            return self.headers.get("Authorization", "") == f"Basic {expected}"

        def _content(self, path: str) -> tuple[bytes | None, str]:
            projects = index.projects()
            parts = [p for p in path.split("/") if p]
            if parts == ["simple"]:
                links = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in projects)
                return _page(links), "text/html"
            if len(parts) == 2 and parts[0] == "simple":
                wheels = projects.get(canonicalize_name(parts[1]))
                if wheels is None:
                    return None, ""
                links = "".join(
                    f'<a href="/files/{html.escape(w.name)}#sha256='
                    f'{hashlib.sha256(w.read_bytes()).hexdigest()}">{html.escape(w.name)}</a>\n'
                    for w in wheels
                )
                return _page(links), "text/html"
            if len(parts) == 2 and parts[0] == "files":
                wheel = index.root / "files" / parts[1]
                if wheel.is_file():
                    return wheel.read_bytes(), "application/octet-stream"
            return None, ""

    return Handler


def _page(links: str) -> bytes:
    return f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n".encode()
