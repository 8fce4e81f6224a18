"""The fallback kernel: a broken stack explained in the notebook, with the standard library only.

When a layered kernel cannot start (layers deleted, interpreter gone, ipykernel not importable),
the launcher starts this instead: a minimal Jupyter kernel that answers every request, fails every
cell with the reason and the repair command (so Run All, nbconvert and papermill stop there), and
needs nothing but a Python 3.9+ (pyzmq and ipykernel may be exactly what is missing).

    python -m kernelstacks_kernel.fallback -f CONNECTION_FILE [--message TEXT]

Without ``--message`` the text is worked out from the kernelspec directory the launcher exports.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
import uuid
from typing import Any

from kernelstacks_kernel import health
from kernelstacks_kernel.zmtp import Connection, Frames, Listener

DELIM = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.3"
ENAME = "KernelstacksBrokenStack"
LANGUAGE_INFO = {
    "name": "python",
    "version": ".".join(map(str, sys.version_info[:3])),
    "mimetype": "text/x-python",
    "file_extension": ".py",
    "pygments_lexer": "ipython3",
    "codemirror_mode": {"name": "ipython", "version": 3},
    "nbconvert_exporter": "python",
}


class FallbackKernel:
    """Answers the Jupyter protocol on the connection file's ports; every cell fails."""

    def __init__(self, connection: dict[str, Any], message: str) -> None:
        self.connection = connection
        self.message = message
        self.session = uuid.uuid4().hex
        key = str(connection.get("key", "")).encode()
        scheme = str(connection.get("signature_scheme", "hmac-sha256"))
        self.digest = getattr(hashlib, scheme.partition("-")[2] or "sha256")
        self.key = key
        self.execution_count = 0
        self.stopped = threading.Event()
        self.iopub = Listener("PUB")
        self.listeners = {
            "shell": Listener("ROUTER", self._on_request),
            "control": Listener("ROUTER", self._on_request),
            "stdin": Listener("ROUTER"),
            "hb": Listener("REP", lambda conn, frames: conn.send(frames)),
        }

    # -- wire format ----------------------------------------------------------------------------

    def sign(self, parts: list[bytes]) -> bytes:
        """HMAC of the four message parts (empty when the connection has no key)."""
        if not self.key:
            return b""
        mac = hmac.new(self.key, digestmod=self.digest)
        for part in parts:
            mac.update(part)
        return mac.hexdigest().encode()

    def message_frames(
        self, msg_type: str, content: dict[str, Any], parent: dict[str, Any]
    ) -> list[bytes]:
        """Signed frames of one message (after the delimiter)."""
        header = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "kernel",
            "session": self.session,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "version": PROTOCOL_VERSION,
        }
        parts = [json.dumps(x).encode() for x in (header, parent.get("header", {}), {}, content)]
        return [self.sign(parts), *parts]

    def parse(self, frames: Frames) -> tuple[list[bytes], dict[str, Any]] | None:
        """Identities and the message, or None when it is malformed or wrongly signed."""
        if DELIM not in frames:
            return None
        split = frames.index(DELIM)
        idents, rest = frames[:split], frames[split + 1 :]
        if len(rest) < 5 or not hmac.compare_digest(rest[0], self.sign(rest[1:5])):
            return None
        header, parent, _metadata, content = (json.loads(p.decode()) for p in rest[1:5])
        return idents, {"header": header, "parent_header": parent, "content": content}

    def reply(
        self,
        conn: Connection,
        idents: list[bytes],
        msg_type: str,
        content: dict[str, Any],
        parent: dict[str, Any],
    ) -> None:
        """Send on the channel the request came from."""
        conn.send([*idents, DELIM, *self.message_frames(msg_type, content, parent)])

    def publish(self, msg_type: str, content: dict[str, Any], parent: dict[str, Any]) -> None:
        """Send on IOPub, with a ``kernel.<session>.<type>`` topic like ipykernel."""
        topic = f"kernel.{self.session}.{msg_type}".encode()
        self.iopub.publish([topic, DELIM, *self.message_frames(msg_type, content, parent)])

    # -- requests -------------------------------------------------------------------------------

    def _on_request(self, conn: Connection, frames: Frames) -> None:
        parsed = self.parse(frames)
        if parsed is None:
            return
        idents, msg = parsed
        msg_type = str(msg["header"].get("msg_type", ""))
        if not msg_type.endswith("_request"):
            return  # comm_open/comm_msg and the like: nothing to do
        self.publish("status", {"execution_state": "busy"}, msg)
        try:
            content = self.answer(msg_type, msg["content"], msg)
            self.reply(conn, idents, msg_type.replace("_request", "_reply"), content, msg)
        finally:
            self.publish("status", {"execution_state": "idle"}, msg)
        if msg_type == "shutdown_request":
            self.publish("shutdown_reply", content, msg)
            self.stopped.set()

    def answer(self, msg_type: str, content: dict[str, Any], msg: dict[str, Any]) -> dict:
        """The reply content of one request."""
        if msg_type == "execute_request":
            return self.execute(content, msg)
        if msg_type == "kernel_info_request":
            return {
                "status": "ok",
                "protocol_version": PROTOCOL_VERSION,
                "implementation": "kernelstacks-fallback",
                "implementation_version": "1",
                "language_info": LANGUAGE_INFO,
                "banner": self.message,
                "help_links": [],
                "debugger": False,
            }
        if msg_type == "complete_request":
            cursor = content.get("cursor_pos", 0)
            return {"status": "ok", "matches": [], "cursor_start": cursor, "cursor_end": cursor,
                    "metadata": {}}  # fmt: skip
        if msg_type == "inspect_request":
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        if msg_type == "is_complete_request":
            return {"status": "complete"}
        if msg_type == "history_request":
            return {"status": "ok", "history": []}
        if msg_type == "comm_info_request":
            return {"status": "ok", "comms": {}}
        if msg_type in ("shutdown_request", "interrupt_request"):
            return {"status": "ok", "restart": bool(content.get("restart"))}
        if msg_type == "debug_request":
            return {
                "type": "response",
                "request_seq": content.get("seq", 0),
                "seq": 0,
                "success": False,
                "command": content.get("command", ""),
                "message": "no debugger: this kernel's stack is broken",
            }
        return {"status": "error", "ename": "NotImplemented", "evalue": msg_type, "traceback": []}

    def execute(self, content: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
        """Every cell fails with the explanation (silent requests just get ``ok``)."""
        if content.get("silent"):
            return {"status": "ok", "execution_count": self.execution_count, "user_expressions": {}}
        self.execution_count += 1
        code = str(content.get("code", ""))
        self.publish("execute_input", {"code": code, "execution_count": self.execution_count}, msg)
        lines = self.message.splitlines() or ["this kernel's stack is broken"]
        error = {"ename": ENAME, "evalue": lines[0], "traceback": lines}
        self.publish("error", error, msg)
        return {"status": "error", "execution_count": self.execution_count, **error}

    # -- running --------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind every port of the connection file."""
        info = self.connection
        transport, ip = str(info.get("transport", "tcp")), str(info.get("ip", "127.0.0.1"))
        self.iopub.bind(transport, ip, int(info["iopub_port"]))
        for channel, listener in self.listeners.items():
            listener.bind(transport, ip, int(info[f"{channel}_port"]))

    def serve(self) -> int:
        """Run until a shutdown request, or until the process that started us is gone."""
        self.start()
        self.publish("status", {"execution_state": "starting"}, {})
        parent = os.getppid()
        while not self.stopped.wait(1.0):
            if os.getppid() != parent:
                break
        time.sleep(0.2)  # let the shutdown reply leave
        return 0


def serve(connection_file: str, message: str) -> int:
    """Run the fallback kernel for this connection file; also print the message to stderr."""
    print(message, file=sys.stderr, flush=True)
    with open(connection_file, encoding="utf-8") as fh:
        connection = json.load(fh)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # nothing runs, nothing to interrupt
    return FallbackKernel(connection, message).serve()


def connection_file_of(argv: list[str]) -> str | None:
    """The connection file in ``-f FILE``, ``-f=FILE`` or ``--f=FILE`` form."""
    for i, arg in enumerate(argv):
        if arg in ("-f", "--f", "--existing") and i + 1 < len(argv):
            return argv[i + 1]
        for prefix in ("-f=", "--f="):
            if arg.startswith(prefix):
                return arg[len(prefix) :]
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m kernelstacks_kernel.fallback -f FILE [--message TEXT]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    connection_file = connection_file_of(args)
    if connection_file is None:
        print("usage: python -m kernelstacks_kernel.fallback -f CONNECTION_FILE", file=sys.stderr)
        return 2
    message = args[args.index("--message") + 1] if "--message" in args else None
    if message is None:
        spec_dir = health.kernel_dir()
        problems = health.layer_problems(spec_dir) if spec_dir else []
        message = health.explain(spec_dir, problems or ["the kernel's stack is broken"])
    return serve(connection_file, message)


if __name__ == "__main__":
    sys.exit(main())
