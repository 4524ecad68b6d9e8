"""The config wing: from Hydra's YAML groups to an mmengine Config.

Composing `conf/` (compose), the resolvers its YAML uses, converting the composition into the
config.py plain mmseg reads (convert), the parity rule with upstream's files, and the values a
config derives: speed switches, the pretrained switch, a schedule fitted to a short run, a user's
own data layout, and the embedded synthetic data set (made when its data_root resolves).

May import: the ground (`seglab` itself: REPO, CONF_DIR; `seglab.errors`, `seglab.masking`,
`seglab.overrides`, `seglab.tree`, `seglab.checkpoint_loading`, `seglab.run_dirs`). Not the
other wings: a checked or trained config builds on this one.
"""
