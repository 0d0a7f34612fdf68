"""Runtime: run models on images, fast and shared.

Owns: ``engine`` (``predict``, ``features``, ``embeddings``), ``model_cache`` (built models kept in
memory, LRU by bytes), ``result_cache`` (results on disk, diskcache), ``device`` (CPU/GPU
choice, precision, threads, out-of-memory retry); ``backends`` (compiled CPU runtimes:
ONNX Runtime, OpenVINO; checked against torch before they serve).
May import: ``modelkit.images``, ``modelkit.models``, ``modelkit.config``, ``modelkit.errors``.
Never the app or gradio. Teach, explain and batch are clients of the engine.
"""
