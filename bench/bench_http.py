"""What a request costs the server itself, against what gradio_client adds on top of it.

    .venv/bin/python bench/bench_http.py [--repeats 20] [--device cpu]

Starts ``python app.py`` (as bench/bench_e2e.py does) and asks the same requests three ways,
interleaved run by run:

- raw HTTP, as a browser or ``curl`` does: upload the file (``POST /gradio_api/upload``), then
  ``POST /gradio_api/call/<name>`` with the inputs, then read the answer from the event stream
  (``GET /gradio_api/call/<name>/<event_id>``, Server-Sent Events); one ``httpx.Client`` kept
  open (keep-alive) for all requests;
- gradio_client, one ``Client`` made once and reused (the cheap way to use it);
- gradio_client, a new ``Client`` per request (what a script that makes one per call pays).

Requests: /model_info (no model runs: the floor), /predict answered from the result cache, and a
warm /predict (model cached, a new top_k each time so the model runs). Same machine, loopback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_e2e import MODEL, ROOT, start_server  # noqa: E402
from benchtable import Table, percentile, print_tables  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from app_server import api_args, call  # noqa: E402

IMAGE = ROOT / "assets" / "chelsea.png"


class RawHttp:
    """Gradio's HTTP API by hand: upload, call, read the event stream."""

    def __init__(self, url: str):
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=120)

    def upload(self, path: Path) -> dict:
        with open(path, "rb") as f:
            answer = self.http.post(f"{self.url}/gradio_api/upload", files={"files": f})
        answer.raise_for_status()
        return {"path": answer.json()[0], "meta": {"_type": "gradio.FileData"}}

    def call(self, name: str, data: list) -> list:
        started = self.http.post(f"{self.url}/gradio_api/call/{name}", json={"data": data})
        started.raise_for_status()
        event_id = started.json()["event_id"]
        event = None
        with self.http.stream("GET", f"{self.url}/gradio_api/call/{name}/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    if event == "error":
                        raise RuntimeError(f"/{name}: {line[5:].strip()}")
                    return json.loads(line[5:])
        raise RuntimeError(f"/{name}: the event stream ended without an answer")

    def predict(self, top_k: int) -> dict:
        return self.call("predict", [self.upload(IMAGE), *api_args(top_k=top_k)])[0]

    def close(self) -> None:
        self.http.close()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(repeats: int = 20, device: str = "cpu") -> dict:
    from gradio_client import Client

    times: dict[tuple[str, str], list[float]] = {}

    def add(what: str, who: str, seconds: float) -> None:
        times.setdefault((what, who), []).append(seconds)

    with tempfile.TemporaryDirectory() as tmp_name:
        server = start_server(Path(tmp_name), device)
        try:
            raw, client = RawHttp(server.url), Client(server.url, verbose=False)
            first = raw.predict(5)  # builds the model and fills the result cache
            if first != call(client, IMAGE.name, top_k=5):
                raise RuntimeError("raw HTTP and gradio_client answered differently")
            for i in range(repeats):
                top_k = 6 + i  # a new top_k per round: the warm requests run the model
                ways = {
                    "raw HTTP + SSE": (
                        lambda: raw.call("model_info", [MODEL]),
                        lambda: raw.predict(5),
                        lambda k=top_k: raw.predict(k),
                    ),
                    "gradio_client, one Client": (
                        lambda: client.predict(MODEL, api_name="/model_info"),
                        lambda: call(client, IMAGE.name, top_k=5),
                        lambda k=top_k + 100: call(client, IMAGE.name, top_k=k),
                    ),
                }
                for who, (info, cached, warm) in ways.items():
                    add("/model_info (no model)", who, timed(info)[0])
                    add("/predict, result-cache hit", who, timed(cached)[0])
                    add("/predict, warm model", who, timed(warm)[0])
                if i % 4 == 0:  # fewer: each new Client also fetches the app's config
                    fresh = lambda: Client(server.url, verbose=False).predict(  # noqa: E731
                        MODEL, api_name="/model_info")  # fmt: skip
                    add("/model_info (no model)", "gradio_client, new Client", timed(fresh)[0])
            raw.close()
        finally:
            server.stop()
    return times


def collect(repeats: int = 20, device: str = "cpu") -> list[Table]:
    times = measure(repeats, device)
    table = Table(
        "one request three ways: raw HTTP + event stream vs gradio_client (same server, loopback)",
        ["request", "device", "who", "n", "p50 ms", "p90 ms", "/ raw HTTP"],
        formats={"p50 ms": ".1f", "p90 ms": ".1f", "/ raw HTTP": ".2f"},
    )
    for what in ("/model_info (no model)", "/predict, result-cache hit", "/predict, warm model"):
        base = percentile([s * 1e3 for s in times[(what, "raw HTTP + SSE")]], 50)
        for who in ("raw HTTP + SSE", "gradio_client, one Client", "gradio_client, new Client"):
            if (what, who) not in times:
                continue
            ms = [s * 1e3 for s in times[(what, who)]]
            p50 = percentile(ms, 50)
            table.add(what, device, who, len(ms), p50, percentile(ms, 90), p50 / base)
    rows = {(r[0], r[2]): r[4] for r in table.rows}
    floor_raw = rows[("/model_info (no model)", "raw HTTP + SSE")]
    floor_gc = rows[("/model_info (no model)", "gradio_client, one Client")]
    fresh = rows.get(("/model_info (no model)", "gradio_client, new Client"))
    table.meaning = (
        f"The server answers a request that runs no model in {floor_raw:.0f} ms over raw HTTP "
        f"and its event stream; gradio_client takes {floor_gc:.0f} ms for the same request with "
        f"one reused Client"
        + (f" and {fresh:.0f} ms with a new Client per call" if fresh else "")
        + ": the difference is the client's own work, not the server's."
    )
    table.notes.append(
        "Raw HTTP keeps one keep-alive connection and uploads the image on every /predict, as "
        "gradio_client does. The warm rows ask a new top_k each time (the model runs); the "
        "cache rows repeat top_k=5. Client and server share this machine's cores."
    )
    return [table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    print_tables(collect(args.repeats, args.device))


if __name__ == "__main__":
    main()
