"""modelkit web app: find an image model, adapt it to any image, see what it predicts and sees.

This file only assembles the page, task first: the model box and its closed "Model settings"
panel on top (``modelkit/app/setup_form.py``), one tab per task below it
(``modelkit/app/<task>.py``), the API endpoints (``modelkit/app/api.py``). Every computation
is a call into ``modelkit``. Run ``python app.py`` (honours GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT). Named API endpoints for gradio_client:
/search_models, /model_info, /predict, /features, /teach, /predict_with_head, /explain,
/compare.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from modelkit import hosting  # noqa: E402
from modelkit.app import (  # noqa: E402
    api,
    batch_page,
    cleanup,
    compare_page,
    explain_page,
    explore,
    guard,
    map_page,
    setup_form,
    teach_page,
)
from modelkit.runtime.device import configure_cpu_threads  # noqa: E402

log = logging.getLogger("modelkit.app")
ASSETS = setup_form.ASSETS
LIMITS = hosting.limits()  # what a visitor may use (README: "Hosting in public")

TASKS = {  # tab id -> what a person wants to do, in their words
    "explore": "What is in this image?",
    "teach": "Teach it my classes",
    "map": "Map my scene",
    "batch": "Run a whole folder",
    "compare": "Compare models",
    "explain": "Why this answer?",
}

with gr.Blocks(title="modelkit", delete_cache=cleanup.delete_cache(LIMITS)) as demo:
    gr.Markdown(
        "# modelkit\nTry image models on your own images: photos, satellite bands, microscopy. "
        "Pick what you want to do."
    )
    guard.status_line()
    form = setup_form.build(demo)
    head = gr.State(None)  # the taught head: Teach and Map fill it; Explain, Batch and Map read it
    with gr.Tabs(elem_id="mk-tabs") as tabs:
        with gr.Tab(TASKS["explore"], id="explore", elem_id="mk-tab-explore"):
            explore.build(demo, form, tabs, "teach", "map")
        with gr.Tab(TASKS["teach"], id="teach", elem_id="mk-tab-teach"):
            taught = teach_page.build(form, head)
        with gr.Tab(TASKS["map"], id="map", elem_id="mk-tab-map"):
            map_page.build(form, head)
        with gr.Tab(TASKS["batch"], id="batch", elem_id="mk-tab-batch"):
            batch_page.build(form, head, taught)
        with gr.Tab(TASKS["compare"], id="compare", elem_id="mk-tab-compare"):
            compare_page.build(form)
        with gr.Tab(TASKS["explain"], id="explain", elem_id="mk-tab-explain"):
            explain_page.build(form, head, taught)
    api.build()
    explain_page.build_api()

demo.queue(
    api_open=False,
    default_concurrency_limit=int(os.environ.get("MODELKIT_CONCURRENCY", "1")),
    max_size=LIMITS.queue_max_size,  # a full queue: gradio answers "busy, try again" (README)
)


def warm_model_facts() -> None:
    """Compute the sizes search shows for models whose sizes are not shipped (those a deployer
    registered; all built-in ones if torchvision is not the pinned version), so that the first
    search is quick. A model whose facts fail (a broken registered model) is logged and does not
    stop the app."""
    from modelkit.models.info import model_params, shipped_sizes
    from modelkit.models.registry import list_models

    # timm's 1,371 models are not warmed: their sizes ship with modelkit for the pinned timm
    shipped = shipped_sizes()
    for name in [n for n in list_models() if not n.startswith("timm/") and n not in shipped]:
        try:
            model_params(name)
        except Exception:  # noqa: BLE001 - one broken model must not keep the others offline
            log.warning("model %s: its facts could not be computed", name, exc_info=True)


def check_private_folders(allowed_paths) -> None:
    """Refuse to start when the result cache lies in a folder the web server hands files out
    from (gradio's temp folder, its examples cache, the allowed paths): anyone could download
    it, with what other people uploaded."""
    from gradio.utils import get_cache_folder, get_upload_folder

    from modelkit.runtime.result_cache import default_cache_dir

    cache = default_cache_dir().expanduser().resolve()
    for folder in (get_upload_folder(), get_cache_folder(), *allowed_paths):
        served = Path(folder).expanduser().resolve()
        if cache == served or served in cache.parents:
            raise SystemExit(
                f"The result cache folder {cache} (MODELKIT_CACHE_DIR) is inside {served}, "
                "which the web server serves files from: anyone could download the cached "
                "results. Set MODELKIT_CACHE_DIR to a folder outside it."
            )


def launch(**kwargs):
    """Start the server; keyword arguments override the defaults (tests pass a port)."""
    options = dict(
        max_file_size=os.environ.get("MODELKIT_MAX_UPLOAD", "200mb"),
        allowed_paths=[str(ASSETS)],
        enable_monitoring=False,
        footer_links=["api"],
        theme=gr.themes.Soft(primary_hue="blue"),
        # gradio 6.31's status announcer (for screen readers) reads a key its English strings
        # lack, so it said "common.complete" when a run ended: give it words
        i18n=gr.I18n(en={"common.complete": "Done."}),
        css=guard.CSS,
    )
    options.update(kwargs)
    check_private_folders(options["allowed_paths"] or [])
    configure_cpu_threads()  # the process's torch threads, once (MODELKIT_CPU_THREADS)
    from gradio.utils import get_upload_folder

    cleanup.start_upload_cleaner(get_upload_folder(), LIMITS)
    warm_model_facts()
    return demo.launch(**options)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch()
