"""Scene maps: a taught head or a model over a whole scene, window by window (``api``)."""
