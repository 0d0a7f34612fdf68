"""Images: bytes in, a (C, H, W) array out, then the tensor a model takes.

Owns: ``limits`` (``ImageArray``, ``ReadLimits``, the size and dtype checks every reader makes
before decoding), ``read`` (``read_image``: format sniffing, Pillow and PNG/JPEG readers),
``tiff`` and ``npy`` (the other readers), ``preprocess`` (channels, scaling, resize, normalise)
and ``display`` (composites, band presets and thumbnails for people to look at).
May import: numpy, Pillow, tifffile, imagecodecs, ``modelkit.errors``, ``modelkit.config``;
``preprocess`` and ``display`` also torch. The readers never import torch (a test checks it),
so a process that only reads files does not pay for it.
"""
