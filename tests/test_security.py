"""The running app serves no file outside its own outputs (and the example assets it publishes),
whatever route, traversal or encoding is tried, and refuses direct POSTs that skip the queue.

Requests go out through http.client, which sends a path exactly as written (httpx would
normalise ``../`` away before the server saw it).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
diskcache = pytest.importorskip("diskcache")
from app_server import ASSETS, ROOT, call, start_app  # noqa: E402
from gradio_client import Client  # noqa: E402

pytestmark = pytest.mark.slow  # starts the app several times

REFUSED = {400, 403, 404, 405, 422}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_app(tmp_path_factory.mktemp("security"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def outputs(server, client):
    """Run features once: the served NPZ copy, the private export it came from, the cache db."""
    summary, downloaded = call(client, "chelsea.png", "/features", out_indices="4")
    name = Path(downloaded).name
    served = [p for p in server.temp_dir.rglob(name)]
    private = list((server.tmp / "private").rglob(name))
    assert served and private and (server.cache_dir / "cache.db").is_file()
    return {"served": served[0], "private": private[0], "cache": server.cache_dir / "cache.db"}


def get(server, raw_path: str, method: str = "GET", body: bytes | None = None, headers=None):
    host, port = server.url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, raw_path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def quote_all(text: str) -> str:
    """Every character percent-encoded (``.`` and ``/`` too)."""
    return "".join(f"%{b:02X}" for b in text.encode())


def variants(target: Path, server) -> list[str]:
    """Request paths that would reach ``target`` if any file route let them through."""
    t = str(target)
    rel_root = "../" * 12 + t.lstrip("/")  # ../../..//etc/passwd from anywhere
    inside = target.is_relative_to(ROOT)
    via_assets = f"{ASSETS}/../{target.relative_to(ROOT)}" if inside else f"{ASSETS}/{rel_root}"
    via_temp = f"{server.temp_dir}/{rel_root}"
    paths = []
    for route in ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/file/"):
        for p in (t, via_assets, via_temp, "file://" + t):
            paths += [
                route + p,
                route + urllib.parse.quote(p, safe="/"),
                route + quote_all(p),
                route + urllib.parse.quote(quote_all(p), safe=""),  # double-encoded
            ]
        paths += [route + via_assets.replace("../", sep) for sep in ("..%2f", "..%252f")]
    for route in ("/static/", "/assets/", "/svelte/", "/gradio_api/static/", "/gradio_api/assets/"):
        paths += [
            route + rel_root,
            route + rel_root.replace("/", "%2f"),
            route + quote_all(rel_root),
            route + urllib.parse.quote(quote_all(rel_root), safe=""),
        ]
    paths += [
        "/gradio_api/proxy=file://" + t,
        "/gradio_api/custom_component/x/client/" + quote_all(rel_root) + "/y",
        "/custom_component/x/client/..%2f..%2f..%2f/" + quote_all(t),
    ]
    return paths


def too_long(raw_path: str) -> bool:
    return any(len(part.encode()) > 255 for part in urllib.parse.unquote(raw_path).split("/"))


def secret_of(target: Path) -> bytes:
    """Bytes of ``target`` that no refusal page could contain by chance."""
    data = target.read_bytes()
    return data[:48] if len(data) > 48 else data


def test_positive_control_outputs_and_examples_are_served(server, outputs):
    status, body = get(server, "/gradio_api/file=" + str(outputs["served"]))
    assert status == 200 and body == outputs["served"].read_bytes()
    status, body = get(server, "/gradio_api/file=" + urllib.parse.quote(str(ASSETS / "coffee.png")))
    assert status == 200 and body == (ASSETS / "coffee.png").read_bytes()


@pytest.mark.parametrize(
    "which",
    [
        "/etc/passwd",
        "app.py",
        "modelkit/runtime/engine.py",
        "tests/app_server.py",
        "cache",
        "private",
    ],
)
def test_no_file_outside_the_outputs_is_served(server, outputs, which):
    if which in outputs:
        target = outputs[which]
    elif which.startswith("/"):
        target = Path(which)
    else:
        target = ROOT / which
    assert target.is_file()
    secret = secret_of(target)
    tried = variants(target, server)
    for path in tried:
        for method in ("GET", "HEAD"):
            status, body = get(server, path, method)
            # gradio's /static and /assets routes answer 500 (not 404) for a name longer than
            # the file system allows (ENAMETOOLONG on stat); nothing is served either way
            assert status in REFUSED or (status == 500 and too_long(path)), (path, method, status)
            assert secret not in body, (path, method)
    assert len(tried) > 50


def upload(server, name: str, data: bytes) -> str:
    """POST /gradio_api/upload with the file name exactly as given; the server's stored path."""
    boundary = "mkboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, response = get(server, "/gradio_api/upload", "POST", body, headers)
    assert status == 200, response[:300]
    (stored,) = json.loads(response)
    return stored


def test_uploads_stay_in_the_temp_folder(server):
    """A hostile upload name cannot put a file outside gradio's temp folder."""
    stored = upload(server, "../../../../../../escaped-upload.txt", b"planted")
    assert Path(stored).resolve().is_relative_to(server.temp_dir.resolve())
    for folder in (server.tmp, server.tmp.parent, ROOT, Path("/"), Path("/tmp")):
        assert not (folder / "escaped-upload.txt").exists()


def cached_results(server) -> int:
    with diskcache.Cache(str(server.cache_dir)) as cache:
        return len(cache)


def post(server, route: str, body: dict):
    headers = {"Content-Type": "application/json"}
    return get(server, route, "POST", json.dumps(body).encode(), headers)


@pytest.mark.parametrize("api", ["predict", "features"])
def test_direct_posts_do_not_run_the_model(server, client, outputs, api):
    # a question nobody asked yet: if anything ran it, the result cache would gain an entry
    form = ["efficientnet_lite2", True, None, "", None, "2", 13, "auto"]
    image = {"path": str(ASSETS / "coffee.png"), "meta": {"_type": "gradio.FileData"}}
    before = cached_results(server)
    routes = [f"/gradio_api/run/{api}", f"/gradio_api/api/{api}", f"/run/{api}", f"/api/{api}"]
    for route in routes + [r + "/" for r in routes]:
        status, response = post(server, route, {"data": [image, *form]})
        assert status in REFUSED, (route, status, response[:200])
    # naming any event by its index: only those that never join the queue run directly
    status, config = get(server, "/config")
    assert status == 200
    direct = set()
    for dep in json.loads(config)["dependencies"]:
        body = {"data": [image, *form], "fn_index": dep["id"]}
        status, response = post(server, f"/gradio_api/run/{api}", body)
        if dep["queue"]:
            assert status in REFUSED, (dep["id"], status, response[:200])
        elif dep["backend_fn"]:
            direct.add(dep["api_name"])
    # only gr.Examples filling an upload box (Explore's, Teach's, Batch's) runs on the server
    # outside the queue: no model work; the other direct events are the browser's own (no server fn)
    assert direct == {"load_example", "load_example_1", "load_example_2"}
    assert cached_results(server) == before
    # the same question through the queue does run, and the count sees it (the control)
    call(client, "coffee.png", f"/{api}", model="efficientnet_lite2", out_indices="2", top_k=13)
    assert cached_results(server) == before + 1


def queued(server, api_name: str, data: list) -> dict:
    """One event through the real queue (join, then read its stream): the completion message."""
    import uuid

    import httpx

    status, config = get(server, "/config")
    (fn_index,) = [d["id"] for d in json.loads(config)["dependencies"] if d["api_name"] == api_name]
    session = uuid.uuid4().hex
    body = {"data": data, "fn_index": fn_index, "session_hash": session}
    joined = httpx.post(server.url + "gradio_api/queue/join", json=body, timeout=30)
    assert joined.status_code == 200, joined.text
    url = server.url + f"gradio_api/queue/data?session_hash={session}"
    with httpx.stream("GET", url, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the queue stream ended without a result")


def test_a_queued_request_cannot_name_a_server_file_as_its_image(server, outputs):
    secret_image = server.tmp / "private" / "secret.npy"  # a readable image, outside the outputs
    secret_image.write_bytes((ASSETS / "landsat8_7band.npy").read_bytes())
    form = ["efficientnet_lite0", True, 7, "", None, "", 3, "auto"]

    def image(path: Path) -> dict:
        return {"path": str(path), "meta": {"_type": "gradio.FileData"}}

    before = cached_results(server)
    targets = [Path("/etc/passwd"), ROOT / "app.py", outputs["cache"], secret_image]
    targets += [ASSETS / ".." / "app.py", server.temp_dir / ".." / "private" / "secret.npy"]
    for target in targets:
        message = queued(server, "predict", [image(target), *form])
        assert message["success"] is False, target
        text = json.dumps(message)
        assert secret_of(target.resolve()).decode("latin-1") not in text
        assert "root:x:0" not in text
    assert cached_results(server) == before
    # the control: a file uploaded first may be named, and is read and run; a ../ from it may not
    uploaded = Path(upload(server, "landsat8_7band.npy", secret_image.read_bytes()))
    escape = uploaded.parent / ".." / ".." / secret_image.relative_to(server.tmp)
    message = queued(server, "predict", [image(escape), *form])
    assert message["success"] is False and cached_results(server) == before
    message = queued(server, "predict", [image(uploaded), *form])
    assert message["success"] is True, message
    assert len(message["output"]["data"][0]["predictions"]) == 3


@pytest.mark.parametrize("inside", ["gradio", "gradio/results", "assets"])
def test_the_app_refuses_a_result_cache_inside_a_served_folder(tmp_path, inside):
    cache = ASSETS / "results-cache" if inside == "assets" else tmp_path / inside
    with pytest.raises(RuntimeError, match="the app exited") as caught:
        start_app(tmp_path, env={"MODELKIT_CACHE_DIR": str(cache)})
    assert "is inside" in str(caught.value) and "Set MODELKIT_CACHE_DIR" in str(caught.value)
    assert not (cache / "cache.db").exists()
