"""Models: the registry (names, tags, search), the factory (build, load weights, adapt, features)
and one module per model source.

Owns: ``registry`` (what exists), ``factory`` (``create_model``, ``model_info``), ``pretrained``
(weights files and the first-conv adaptation), ``features`` (one ``FamilySpec`` contract per
family, ``features_only``), ``sources`` (which source modules feed the registry) and the sources
themselves (``torchvision``, ``efficientnet_lite``).
May import: ``modelkit.config``, ``modelkit.errors``, torch, torchvision. Never the runtime, the
app or gradio. Sources never import the registry: the registry asks ``sources`` for entries.
"""
