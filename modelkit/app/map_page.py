"""The task "Map my scene": a scene (a GeoTIFF of any size, or the example), its picture, and one
button; the answer in one sentence (what covers the scene), the class map over the picture with
an opacity slider, the area per class, how sure the map is, which cells look alike, and the
GeoTIFF, PNG and CSV to take away. Teach it on the scene itself: type a class, click where it
is (a click on an example removes it), ask where to label next (numbered; click one to label
it), find look-alikes of a spot; the examples export as a ZIP that Teach accepts, and come
back from it.

Classes come from band statistics taught on the clicks (the default: quick and, on satellite
bands, often the best), from the model above taught on the clicks, or from the classes taught
on the Teach task."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from modelkit.app import map_state, runs, words
from modelkit.app.gpu import MAX_SECONDS, on_gpu
from modelkit.app.guard import MODEL_WORK, clearing, guarded, status
from modelkit.app.runs import FormRun, head_in_use
from modelkit.app.setup_form import ASSETS, SetupForm
from modelkit.errors import ConfigError
from modelkit.images.limits import ImageArray

EXAMPLE_SCENE = ASSETS / "sentinel2_scene_20m.tif"
SOURCES = [("band statistics, taught by your clicks", "bands"),
           ("the model above, taught by your clicks", "model"),
           ("the classes taught on the Teach task", "taught")]  # fmt: skip
MODES = [("add or remove an example", "teach"), ("find look-alikes", "alike")]
AREA_HEADERS = ["class", "share of the scene", "km²"]
SUGGESTIONS = 5
LOOK_ALIKES = 20


def _summary(state: dict) -> str:
    _, (bands, height, width), names = map_state.preview(state["scene"])
    named = f" ({', '.join(names)})" if names else ""
    return f"**{Path(state['scene']).name}** · {width} × {height} pixels · {bands} bands{named}"


def _counts(state: dict) -> str:
    found = map_state.counts(state)
    if not found:
        return "No examples yet: type a class name, then click where it is on the scene."
    return "Examples: " + ", ".join(f"**{c}** {n}" for c, n in found.items())


def _piece(value) -> int:
    try:
        piece = int(float(value))
    except (TypeError, ValueError):
        piece = 0
    if piece < 2:
        raise ConfigError(f"The piece size must be a whole number of pixels, 2 or more; got "
                          f"{value!r}.")  # fmt: skip
    return piece


# --- handlers -----------------------------------------------------------------------------------


@guarded
def on_scene(file, tile, opacity):
    """A new scene: its picture, what it is; no examples, no map yet."""
    if not file:
        return {status(): ""}
    state = map_state.new_state(str(file))
    picture = map_state.picture(state, float(opacity), _piece(tile))
    return "", picture, _summary(state), _counts(state), state


@guarded
def on_click(state, cls, mode, tile, opacity, evt: gr.SelectData):
    if not state or not state.get("scene"):
        raise ConfigError("Choose a scene first (upload one, or click the example).")
    x, y = map_state.scene_point(state, *evt.index)
    note = ""
    if mode == "alike":
        scene_map = map_state.the_map(state)
        if scene_map is None:
            raise ConfigError("Map the scene first; then click a spot to find its look-alikes.")
        row, col = map_state.cell_of(state, x, y)
        cells = scene_map.similar(row, col, LOOK_ALIKES)
        state = {**state, "alike": [[int(r), int(c)] for r, c in cells]}
        note = (f"The {len(cells)} cells most like the one clicked are outlined in white "
                f"(cell row {row}, column {col}).")  # fmt: skip
    else:
        state = map_state.toggle_example(state, cls, x, y, _piece(tile))
        note = _counts(state)
    return "", map_state.picture(state, float(opacity), _piece(tile)), state, note


def _teach_on_clicks(state, source, settings, tile: int, progress):
    """A head taught on the pieces around the clicks: band statistics, or the model above."""
    from modelkit.models.bands import bands_name
    from modelkit.scenes.scaling import scene_scaling
    from modelkit.scenes.windows import open_scene
    from modelkit.teach.baseline import bands_baseline, baseline_warning
    from modelkit.teach.train import train_head

    map_state.check_examples(state)
    raw, labels, names = map_state.pieces(state, tile)
    _, (bands, _, _), band_names = map_state.preview(state["scene"])
    images = [ImageArray(p, n, "tiff", p.shape, "CYX", str(p.dtype), (0.0, 1.0),
                         band_names=band_names)
              for p, n in zip(raw, names, strict=True)]  # fmt: skip
    folds = min(5, min(map_state.counts(state).values()))
    if source == "bands":  # raw values: what band statistics read, on a tile as on the map
        settings = settings.replace(model=bands_name(band_names), pretrained=True,
                                    in_chans=bands, channels=None, num_classes=None)  # fmt: skip
        return train_head(images, labels, settings, names=names, folds=folds)
    settings = settings.replace(in_chans=bands, channels=None, num_classes=None)
    net, _ = settings.build()
    with open_scene(state["scene"]) as scene:  # the map's own scaling, from the whole scene
        scaling = scene_scaling(scene, settings.scaling, settings.data_config(net), None)
    config = settings.data_config(net)
    tiles = [scaling.tile_input(p, config)[0] for p in raw]
    progress(0.1, desc=f"Teaching {settings.name} on {len(tiles)} pieces")
    head = train_head(tiles, labels, settings, names=names, folds=folds)
    y = np.array([head.classes.index(label) for label in labels])
    baseline = bands_baseline(images, y, folds=folds, groups=None, seed=0, solver="torch")
    if baseline is not None:  # the honest baseline beside the network (see teach.baseline)
        head.fit["baseline"] = baseline
        warning = baseline_warning(head.cv_accuracy, baseline)
        head.warnings += [warning] if warning else []
    return head


@guarded
@runs.shows_downloads
@on_gpu(MAX_SECONDS)
def on_map(state, source, tile, stride, opacity, head, *form_values,
           progress=gr.Progress()):  # noqa: B008  # fmt: skip
    from modelkit.scenes.api import map_scene

    if not state or not state.get("scene"):
        raise ConfigError("Choose a scene first: upload a GeoTIFF, or click the example.")
    tile = _piece(tile)
    stride = _piece(stride) if stride not in (None, "", 0) else max(1, tile // 2)
    settings = FormRun.read(form_values).settings
    taught, said = None, ""
    if source == "taught":
        taught = head_in_use(head)
    elif state["examples"]:
        progress(0.02, desc="Teaching on your examples")
        taught = _teach_on_clicks(state, source, settings, tile, progress)
        said = words.teach_sentence(taught) + "".join(f"\n- ⚠ {w}" for w in taught.warnings)
    elif source == "bands":
        raise ConfigError("Band statistics have no classes of their own: type a class name and "
                          "click on the scene where it is (two or more places per class, two or "
                          "more classes), then Map again.")  # fmt: skip

    def report(done: int, total: int) -> None:
        progress(0.3 + 0.65 * done / max(total, 1), desc=f"Mapping: {done} of {total} windows")

    scene_map = map_scene(state["scene"], settings.replace(in_chans=None, channels=None),
                          head=taught, tile=tile, stride=stride, embeddings=True,
                          progress=report)  # fmt: skip
    state = {**state, "map": map_state.keep_map(scene_map), "alike": [], "suggested": []}
    answer = words.map_sentence(scene_map.area)
    if said:
        answer += "\n\n" + said
    if taught is None:
        answer += ("\n\n⚠ These are the model's own classes (everyday photos): on a scene they "
                   "mean little. Teach it your classes by clicking on the scene.")  # fmt: skip
    rows = map_state.area_table(scene_map, AREA_HEADERS)
    notes = "\n".join(f"- {n}" for n in scene_map.notes)
    return (
        "", map_state.picture(state, float(opacity), tile), answer, rows,
        map_state.confidence_picture(state), map_state.embedding_picture(state),
        _downloads(scene_map, state["scene"]), notes, state,
        taught if taught is not None else head,
    )  # fmt: skip


def _downloads(scene_map, scene: str) -> list[str]:
    stem = Path(scene).stem + "-map"
    write = runs.EXPORTS.write
    with tempfile.TemporaryDirectory() as tmp:
        tif = scene_map.save(Path(tmp) / f"{stem}.tif")
        png = scene_map.save_png(Path(tmp) / f"{stem}.png")
        csv = scene_map.save_csv(Path(tmp) / f"{stem}.csv")
        probs = tif.with_name(f"{stem}.probabilities.tif")
        return [str(write(p.name, p.read_bytes())) for p in (tif, probs, png, csv) if p.exists()]


@guarded
def on_suggest(state, tile, opacity):
    scene_map = map_state.the_map(state or {})
    if scene_map is None:
        raise ConfigError("Map the scene first (with a few examples, or none): the suggestions "
                          "come from the map.")  # fmt: skip
    labelled = [map_state.cell_of(state, e["x"], e["y"]) for e in state["examples"]]
    cells = scene_map.suggest(SUGGESTIONS, labelled=labelled)
    cell = scene_map.cell
    points = [[int(c * cell + cell // 2), int(r * cell + cell // 2)] for r, c in cells]
    state = {**state, "suggested": points}
    note = (
        f"{len(points)} places worth labelling next are numbered on the scene: type the class "
        "you see there and click the number. (Places: "
        + ", ".join(f"{i} at x {x}, y {y}" for i, (x, y) in enumerate(points, 1))
        + ".)"
    )
    note += "".join(f" {n}" for n in scene_map.last_notes)
    return "", map_state.picture(state, float(opacity), _piece(tile)), state, note


@guarded
def on_opacity(state, opacity, tile):
    if not state or not state.get("scene"):
        return {status(): ""}
    return "", map_state.picture(state, float(opacity), _piece(tile))


@guarded
def on_export(state, tile):
    if not state or not state.get("examples"):
        raise ConfigError("No examples to export yet: click on the scene to give some.")
    data = map_state.examples_zip(state, _piece(tile))
    return "", str(runs.EXPORTS.write(f"{Path(state['scene']).stem}-examples.zip", data))


@guarded
def on_import(state, file, tile, opacity):
    if not file:
        return {status(): ""}
    if not state or not state.get("scene"):
        raise ConfigError("Choose the scene these examples belong to first.")
    state = map_state.import_zip(state, Path(file).read_bytes())
    return "", map_state.picture(state, float(opacity), _piece(tile)), state, _counts(state)


# --- layout -------------------------------------------------------------------------------------


def build(setup: SetupForm, head: gr.State) -> None:
    """The task's page, wired to the model settings and the page's taught head (which a map
    taught by clicks becomes)."""
    start = map_state.new_state(str(EXAMPLE_SCENE))
    with gr.Row(equal_height=False):
        with gr.Column(scale=6):
            view = gr.Image(map_state.picture(start, 0.55, 16), label="The scene (click on it)",
                            interactive=False, height=520, buttons=[],
                            elem_id="mk-map-view")  # fmt: skip
        with gr.Column(scale=5):
            scene = gr.File(value=str(EXAMPLE_SCENE), label="Your scene (GeoTIFF, any size)",
                            file_types=[".tif", ".tiff", ".npy"], height=90,
                            elem_id="mk-map-scene")  # fmt: skip
            summary = gr.Markdown(_summary(start))
            with gr.Row():
                cls = gr.Dropdown(["water", "vegetation", "other"], value="water",
                                  allow_custom_value=True, label="Class you click",
                                  elem_id="mk-map-class", scale=2)  # fmt: skip
                mode = gr.Radio(MODES, value="teach", label="A click will", scale=3,
                                elem_id="mk-map-mode")  # fmt: skip
            with gr.Row():  # above the counts, so that it is in sight at 1366 x 768
                run = gr.Button("Map it", variant="primary", elem_id="mk-map-run", scale=3)
                stop = gr.Button("Stop", elem_id="mk-map-stop", scale=1)
            counts = gr.Markdown(_counts(start), elem_id="mk-map-counts")
            suggest = gr.Button("Where should I label next?", size="sm",
                                elem_id="mk-map-suggest")  # fmt: skip
            answer = gr.Markdown(elem_id="mk-map-answer")
    opacity = gr.Slider(0, 1, value=0.55, step=0.05, label="Map opacity", elem_id="mk-map-opacity")
    with gr.Row():
        areas = gr.Dataframe(headers=AREA_HEADERS, interactive=False, elem_id="mk-map-areas")
        downloads = gr.File(label="The map: GeoTIFF (classes, probabilities), PNG, CSV",
                            file_count="multiple", interactive=False,
                            elem_id="mk-map-downloads")  # fmt: skip
    with gr.Accordion("More: how sure, which cells look alike, the pieces, the examples",
                      open=False):  # fmt: skip
        source = gr.Radio(SOURCES, value="bands", label="Classes from", elem_id="mk-map-source")
        with gr.Row():
            tile = gr.Number(16, label="Piece size (pixels)", precision=0, minimum=2,
                             info="tile: what one example and one map piece cover")  # fmt: skip
            stride = gr.Number(8, label="Step between pieces (pixels)", precision=0, minimum=1,
                               info="stride: the map's cell; half a piece blends them")  # fmt: skip
        with gr.Row():
            confidence = gr.Image(label="How sure (white: sure)", interactive=False, height=260)
            looks = gr.Image(label="Which cells look alike (colours of their features)",
                             interactive=False, height=260)  # fmt: skip
        with gr.Row():
            export = gr.Button("Export the examples (ZIP for Teach)", size="sm")
            exported = gr.File(label="Examples", interactive=False)
            imported = gr.File(label="Import examples exported here", file_types=[".zip"],
                               height=90)  # fmt: skip
        notes = gr.Markdown()
    state = gr.State(start)

    private = dict(api_visibility="private")
    shown = [view, summary, counts, state]
    scene.change(clearing(on_scene, shown), [scene, tile, opacity], [status(), *shown], **private)
    view.select(on_click, [state, cls, mode, tile, opacity], [status(), view, state, counts],
                **private)  # fmt: skip
    outputs = [status(), view, answer, areas, confidence, looks, downloads, notes, state, head]
    mapped = run.click(clearing(on_map, [answer, areas, confidence, looks, downloads, notes]),
                       [state, source, tile, stride, opacity, head, *setup.inputs], outputs,
                       concurrency_id=MODEL_WORK, **private)  # fmt: skip
    stop.click(None, cancels=[mapped], **private)
    suggest.click(on_suggest, [state, tile, opacity], [status(), view, state, counts], **private)
    opacity.input(on_opacity, [state, opacity, tile], [status(), view], trigger_mode="always_last",
                  show_progress="hidden", **private)  # fmt: skip
    export.click(on_export, [state, tile], [status(), exported], **private)
    imported.change(on_import, [state, imported, tile, opacity], [status(), view, state, counts],
                    **private)  # fmt: skip
