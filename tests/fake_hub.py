"""A Hugging Face Hub on 127.0.0.1 for tests, enough for huggingface_hub's ``hf_hub_download``.

What it serves, as the Hub does for an LFS file (read in huggingface_hub's ``file_download.py``):

- ``HEAD /{repo}/resolve/{revision}/{file}``: a 302 to a "CDN" on another host name
  (``localhost``; huggingface_hub follows redirects only on the Hub's own host, so it reads the
  metadata from the 302 itself) with ``X-Repo-Commit``, ``X-Linked-Etag`` (the sha256) and
  ``X-Linked-Size``; or, with ``cdn=False``, a plain 200 with ``ETag`` and ``Content-Length``.
  No ``X-Xet-Hash``: the plain HTTP download is taken, not Xet.
- ``GET`` of the file: its bytes, in ``chunk``-byte pieces ``delay`` seconds apart, with
  ``Range: bytes=N-`` answered by a 206.
- Unknown repo, revision or file: 404 with the ``X-Error-Code`` the Hub sends.

Faults per file (``hub.fault(repo, file, kind)``): ``"500"`` (HEAD answers 500), ``"500-get"``
(the GET does), ``"truncate"`` (every GET announces the whole size and stops half-way),
``"drop-once"`` (only the first GET does), ``"short"`` (the GET announces and sends half: a body
that looks complete), ``"corrupt"`` (the right size, bytes flipped). ``hub.stop()``: a Hub gone.
Point huggingface_hub at it with ``HF_ENDPOINT=hub.url``; ``hub.requests`` lists what came in.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("", "500", "500-get", "truncate", "drop-once", "short", "corrupt")


@dataclass
class Served:
    data: bytes
    fault: str = ""
    gets: int = 0

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Repo:
    commit: str
    files: dict[str, Served] = field(default_factory=dict)


def state_dict_bytes(sd: dict) -> bytes:
    """A state dict as the bytes of a ``.safetensors`` file (``.pth`` via ``torch.save``)."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in sd.items()})


def torch_bytes(sd: dict) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


class FakeHub:
    def __init__(self, chunk: int = 1 << 20, delay: float = 0.0, cdn: bool = True):
        self.repos: dict[str, Repo] = {}
        self.chunk, self.delay, self.cdn = chunk, delay, cdn
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- content ------------------------------------------------------------------------------

    def add(self, repo: str, filename: str, data: bytes, commit: str | None = None) -> Served:
        commit = commit or hashlib.sha1(repo.encode()).hexdigest()
        entry = self.repos.setdefault(repo, Repo(commit))
        entry.files[filename] = Served(data)
        return entry.files[filename]

    def fault(self, repo: str, filename: str, kind: str) -> None:
        assert kind in FAULTS, kind
        self.repos[repo].files[filename].fault = kind

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if (method in (None, m)) and contains in p)

    # --- life ---------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_CDN = re.compile(r"^/cdn/([^/]+/[^/]+)/([0-9a-f]+)/(.+)$")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: a cut body is a closed socket

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            with hub._lock:
                hub.requests.append(("HEAD" if head else "GET", path))
            if m := _CDN.match(path):
                repo, commit, filename = m.groups()
                entry = hub.repos.get(repo)
                served = entry.files.get(filename) if entry else None
                if served is None:
                    return self._error(404, "EntryNotFound")
                return self._body(served, head)
            m = _RESOLVE.match(path)
            if not m:
                return self._error(404, "RepoNotFound")
            repo, revision, filename = m.groups()
            entry = hub.repos.get(repo)
            if entry is None:
                return self._error(404, "RepoNotFound")
            if revision not in ("main", entry.commit):
                return self._error(404, "RevisionNotFound")
            served = entry.files.get(filename)
            if served is None:
                return self._error(404, "EntryNotFound", entry.commit)
            if served.fault == "500":
                return self._error(500, "")
            meta = {"X-Repo-Commit": entry.commit, "ETag": f'"{served.sha256}"'}
            if hub.cdn:  # the Hub's way for LFS files: metadata on a redirect to the CDN
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{hub.port}/cdn/{repo}/"
                                             f"{entry.commit}/{filename}")  # fmt: skip
                self.send_header("X-Linked-Etag", f'"{served.sha256}"')
                self.send_header("X-Linked-Size", str(len(served.data)))
                for key, value in meta.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._body(served, head, meta)

        def _error(self, status: int, code: str, commit: str | None = None) -> None:
            body = b'{"error": "fake hub"}'
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self, served: Served, head: bool, meta: dict | None = None) -> None:
            data, total = served.data, len(served.data)
            if not head:
                served.gets += 1
                if served.fault == "500-get":
                    return self._error(500, "")
            start = 0
            if (rng := re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))) and not head:
                start = int(rng.group(1))
            body = data[start:]
            announced = len(body)
            stop_at = len(body)  # how much really goes out
            if not head:
                once = served.fault == "drop-once" and served.gets == 1
                if served.fault == "truncate" or once:
                    stop_at = len(body) // 2
                elif served.fault == "short":
                    body = body[: len(body) // 2]
                    announced = stop_at = len(body)
                elif served.fault == "corrupt":
                    body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
            self.send_response(206 if start else 200)
            for key, value in (meta or {}).items():
                self.send_header(key, value)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            if head:
                return None
            sent = 0
            try:
                while sent < stop_at:
                    piece = body[sent : min(stop_at, sent + hub.chunk)]
                    self.wfile.write(piece)
                    self.wfile.flush()
                    sent += len(piece)
                    if hub.delay:
                        time.sleep(hub.delay)
            except (BrokenPipeError, ConnectionResetError):
                pass
            if stop_at < len(body):
                self.close_connection = True
            return None

    return Handler
