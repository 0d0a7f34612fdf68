"""The one error guard of the page and of the API: a mistake a user can make (a ModelkitError)
becomes a plain message (on the page in the page's own words, ``words.page_error``; through the
API the library's exact words); anything else is logged and answered with a short apology. No
handler ever shows a traceback. ``clearing`` empties a handler's outputs when it fails, so that
no result of an earlier input stays on screen beside the error."""

from __future__ import annotations

import functools
import logging

import gradio as gr

from modelkit.app.words import page_error
from modelkit.errors import ModelkitError

log = logging.getLogger("modelkit.app")
INTERNAL = "Something went wrong inside the app (it has been logged). Try other settings."
MODEL_WORK = "model-work"  # one concurrency group around everything that runs a model
CSS = """
.mk-error { background: #fef2f2; border: 1px solid #fca5a5; color: #991b1b; padding: 8px 12px;
            border-radius: 8px; }
#mk-status:empty { display: none; }
"""

_status: list[gr.HTML] = []  # the page's status line, made once by status_line()


def status_line() -> gr.HTML:
    """The status line at the top of the page: empty, or the last problem in plain words."""
    _status[:] = [gr.HTML(elem_id="mk-status")]
    return _status[0]


def status() -> gr.HTML:
    return _status[0]


def problem(message: str) -> str:
    return f'<div class="mk-error">⚠️ {message}</div>'


def guarded(fn):
    """A page handler: a user error becomes a warning and the status line; the page keeps working.
    A handler returns "" first to clear the status line, or a dict {status(): ...} to touch only it.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModelkitError as exc:
            message = page_error(exc)
            gr.Warning(message)
            return {status(): problem(message)}
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            gr.Warning(INTERNAL)
            return {status(): problem(INTERNAL)}

    return wrapper


def clearing(fn, outputs):
    """``fn`` (a guarded handler) whose failure also empties every output in ``outputs`` (the
    status line keeps the error): after a failed run or upload, nothing old is left showing."""

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, dict) and out.get(status()):
            values = [c for c in outputs if isinstance(c, gr.components.Component)]
            return {**{c: None for c in values if c is not status()}, **out}
        return out

    return handler


def api_guarded(fn):
    """An API endpoint: a user error comes back as its message (gr.Error), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModelkitError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            raise gr.Error(INTERNAL, print_exception=False) from None

    return wrapper
