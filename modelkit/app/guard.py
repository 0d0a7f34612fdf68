"""The one error guard of the page and of the API: a mistake a user can make (a ModelkitError)
becomes a plain message; anything else is logged and answered with a short apology. No handler
ever shows a traceback."""

from __future__ import annotations

import functools
import logging

import gradio as gr

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
            gr.Warning(str(exc))
            return {status(): problem(str(exc))}
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            gr.Warning(INTERNAL)
            return {status(): problem(INTERNAL)}

    return wrapper


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
