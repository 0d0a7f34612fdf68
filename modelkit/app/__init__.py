"""The web app's parts: one module per page (tab) with its layout and handlers, and the pieces
they share.

Owns: ``guard`` (the error guard, the status line; no handler shows a traceback), ``form`` (the
setup form's parsing and the markdown a page shows; no gradio), ``figures`` (plotly), ``exports``
(files offered for download), ``snippet`` (the Python that reproduces a run), and the pages.
May import: everything in ``modelkit``. Only the page modules and ``guard`` import gradio.
"""
