"""A real HTTP server on 127.0.0.1 that serves a folder, honours Range, and can misbehave on cue."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Behaviour:
    """How the next requests go wrong: 503s first, then bodies cut after some bytes."""

    fail_first: int = 0
    fail_status: int = 503  # what those first failures answer
    cut_after: int | None = None
    cut_times: int = 0
    ignore_range: bool = False
    requests: list[dict] = field(default_factory=list)


def _handler(folder: Path, behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            behaviour.requests.append({"path": self.path, "range": self.headers.get("Range")})
            if behaviour.fail_first > 0:
                behaviour.fail_first -= 1
                self.send_error(behaviour.fail_status, "try later")
                return
            path = folder / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = 0
            header = self.headers.get("Range")
            if header and not behaviour.ignore_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if behaviour.cut_times > 0 and behaviour.cut_after is not None:
                behaviour.cut_times -= 1
                self.wfile.write(body[: behaviour.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def serve(folder: Path, behaviour: Behaviour | None = None) -> Iterator[tuple[str, Behaviour]]:
    """Serve ``folder``; yield the base URL and the behaviour object (mutable while serving)."""
    behaviour = behaviour or Behaviour()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Path(folder), behaviour))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", behaviour
    finally:
        server.shutdown()
        server.server_close()
