"""Just enough ZeroMQ (ZMTP 3.0, NULL security) for a Jupyter kernel made of the standard library.

The fallback kernel (:mod:`kernelstacks_kernel.fallback`) must answer a notebook when a stack's
layers are broken, which is exactly when pyzmq may be missing: it lives in a framework layer that
can be gone. Jupyter clients (libzmq DEALER, SUB and REQ sockets) connect to ports the kernel
binds, so the kernel side only needs the *listening* half of four socket types: ROUTER (shell,
control, stdin), PUB (iopub) and REP (heartbeat). Each accepted connection speaks ZMTP 3.0:
a 64-byte greeting, a READY command, then length-prefixed frames with a MORE flag.

Deliberately small: no CURVE, no reconnection (the client reconnects), PUB sends every message to
every subscriber (Jupyter clients subscribe to everything).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from typing import Callable

#: A multipart message: its frames in order.
Frames = list[bytes]

_SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04


def greeting() -> bytes:
    """Our 64-byte greeting: ZMTP 3.0, NULL mechanism, not a server of a security handshake."""
    return _SIGNATURE + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


def encode_frame(body: bytes, more: bool = False, command: bool = False) -> bytes:
    """One frame: flags, a 1- or 8-byte big-endian size, the body."""
    flags = (_MORE if more else 0) | (_COMMAND if command else 0)
    if len(body) > 255:
        return bytes([flags | _LONG]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def ready_command(socket_type: str) -> bytes:
    """The READY command announcing our socket type (the only property clients check)."""
    name, value = b"Socket-Type", socket_type.encode()
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(value)) + value
    return encode_frame(body, command=True)


def parse_properties(body: bytes) -> dict:
    """Properties of a READY command body (after its name)."""
    props, i = {}, 0
    while i < len(body):
        size = body[i]
        name = body[i + 1 : i + 1 + size].decode("ascii", "replace")
        i += 1 + size
        (length,) = struct.unpack(">I", body[i : i + 4])
        props[name] = body[i + 4 : i + 4 + length]
        i += 4 + length
    return props


class Connection:
    """One accepted peer: the handshake, then whole multipart messages in and out."""

    def __init__(self, sock: socket.socket, socket_type: str) -> None:
        self.sock = sock
        self.socket_type = socket_type
        self.peer_type = ""
        self._send_lock = threading.Lock()

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("peer closed the connection")
            data += chunk
        return data

    def handshake(self) -> None:
        """Exchange greetings and READY commands (NULL mechanism)."""
        self.sock.sendall(greeting())
        peer = self._read(64)
        if peer[0] != 0xFF or peer[9] != 0x7F or peer[10] < 3:
            raise ConnectionError("the peer does not speak ZMTP 3")
        if peer[12:32].rstrip(b"\x00") != b"NULL":
            raise ConnectionError("the peer wants encryption, which this kernel cannot do")
        self.sock.sendall(ready_command(self.socket_type))
        is_command, body = self._read_frame()
        if not is_command or body[1 : 1 + body[0]] != b"READY":
            raise ConnectionError("the peer sent no READY command")
        props = parse_properties(body[1 + body[0] :])
        self.peer_type = props.get("Socket-Type", b"").decode("ascii", "replace")

    def _read_frame(self) -> tuple:
        flags = self._read(1)[0]
        size = struct.unpack(">Q", self._read(8))[0] if flags & _LONG else self._read(1)[0]
        body = self._read(size) if size else b""
        self._last_more = bool(flags & _MORE)
        return bool(flags & _COMMAND), body

    def recv(self) -> Frames:
        """The next whole message (commands such as PING are answered or skipped)."""
        frames: Frames = []
        while True:
            is_command, body = self._read_frame()
            if is_command:
                if body[1 : 1 + body[0]] == b"PING":
                    context = body[1 + body[0] + 2 :]
                    self._send_raw(encode_frame(b"\x04PONG" + context, command=True))
                continue
            frames.append(body)
            if not self._last_more:
                return frames

    def _send_raw(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def send(self, frames: Frames) -> None:
        """Send one multipart message."""
        last = len(frames) - 1
        self._send_raw(b"".join(encode_frame(f, more=i < last) for i, f in enumerate(frames)))

    def close(self) -> None:
        """Close the socket, ignoring errors (the peer may be gone already)."""
        with contextlib.suppress(OSError):
            self.sock.close()


Handler = Callable[[Connection, Frames], None]


class Listener:
    """A bound socket of one type: accepts peers and hands their messages to ``on_message``."""

    def __init__(self, socket_type: str, on_message: Handler | None = None) -> None:
        self.socket_type = socket_type
        self.on_message = on_message
        self.peers: list[Connection] = []
        self._lock = threading.Lock()
        self.server: socket.socket | None = None

    def bind(self, transport: str, ip: str, port: int) -> None:
        """Bind as Jupyter's connection file says (``tcp`` or ``ipc``) and start accepting."""
        if transport == "ipc":
            path = f"{ip}-{port}"
            if os.path.exists(path):
                os.unlink(path)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(path)
        else:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            server = socket.socket(family, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("0.0.0.0" if ip in ("*", "") else ip, port))
        server.listen(16)
        self.server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.server is not None
        while True:
            try:
                sock, _addr = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Connection(sock, self.socket_type)
        try:
            conn.handshake()
            with self._lock:
                self.peers.append(conn)
            while True:
                frames = conn.recv()
                if self.on_message is not None:
                    self.on_message(conn, frames)
        except (OSError, ConnectionError, ValueError, IndexError, struct.error):
            pass
        finally:
            with self._lock:
                if conn in self.peers:
                    self.peers.remove(conn)
            conn.close()

    def publish(self, frames: Frames) -> None:
        """PUB: send to every connected subscriber (a failing one is dropped)."""
        with self._lock:
            peers = list(self.peers)
        for peer in peers:
            try:
                peer.send(frames)
            except OSError:
                peer.close()
