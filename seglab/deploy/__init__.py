"""The deploy wing: from a trained run to a model that serves without PyTorch or mmseg's code.

`export` turns a run's segmentor into `model.onnx` with torch's own exporter (an image tensor
in, per-class logits at the input's resolution out; normalisation and the last resize inside the
graph), refusing models with mmcv's compiled operators before it starts. `preprocess` writes and
reads `preprocess.json`, what a program needs besides the graph (channel order, resize, padding,
sliding window, classes, palette), validating every key of a file it did not write. `pipeline`
is the image side of segmenting (resize, pad, windows, the final resize) in NumPy;
`onnx_runtime` loads the pair into ONNX Runtime, no custom operator library registered, and
segments an image with it; `parity` compares it with the PyTorch model on sample images;
`command` is `seglab deploy` and `seglab infer model=...onnx`.

May import: the ground, the config, checks and run wings, and the commands' `evaluate` and
`drawings` (their output names, checks and overlay are reused, not copied); only `cli` imports
this wing, so it sits with the commands (tests/test_layout.py).
"""
