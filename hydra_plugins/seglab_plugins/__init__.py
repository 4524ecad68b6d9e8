"""seglab's Hydra plugins; Hydra finds them in the `hydra_plugins` namespace package.

May import: seglab's ground (`seglab.errors`, `seglab.masking`, `seglab.overrides`, ...), its
checks and run wings; seglab imports nothing of them (tests/test_layout.py).
"""
