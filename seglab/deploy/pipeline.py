"""The image side of segmenting with an exported graph, in NumPy and OpenCV, step for step as
mmseg's inferencer does it around the network: the test pipeline's `Resize` (mmcv's own
functions, so the pixels are the same), the channel order, the padding of the data
preprocessor's `test_cfg` (after normalising in mmseg, so padded here with the raw value that
normalises to it), the sliding window of `test_cfg.mode='slide'`, and the resize of the logits
back to the photo (torch's bilinear, align_corners either way, here as two 2-tap passes)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seglab.deploy.preprocess import Preprocess

WINDOW_BATCH = 16  # sliding windows per run of the graph (its batch is free)


def resized(photo: np.ndarray, resize: dict | None) -> np.ndarray:
    """mmcv's `Resize` transform on an HxWx3 image: `scale` (w, h) wins over `scale_factor`;
    `keep_ratio` fits the image inside the scale (mmcv.imrescale), else resizes to it."""
    import mmcv

    if resize is None:
        return photo
    scale = resize["scale"]
    if scale is None:  # mmcv's _scale_size of (w, h) by the factors
        h, w = photo.shape[:2]
        fw, fh = resize["scale_factor"]
        scale = (int(w * fw + 0.5), int(h * fh + 0.5))
    else:
        scale = tuple(scale)
    if resize["keep_ratio"]:
        return mmcv.imrescale(photo, scale, interpolation=resize["interpolation"], backend="cv2")
    return mmcv.imresize(photo, scale, interpolation=resize["interpolation"], backend="cv2")


def network_input(photo_bgr: np.ndarray, pre: Preprocess) -> np.ndarray:
    """The photo as OpenCV reads it (HxWx3 BGR uint8) to the graph's 3xHxW float32 input."""
    image = resized(photo_bgr, pre.resize)
    if pre.channel_order == "rgb":
        image = image[..., ::-1]
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def padded(image: np.ndarray, pre: Preprocess) -> tuple[np.ndarray, tuple[int, int]]:
    """`image` (3xHxW) padded at the bottom and right as mmseg's `stack_batch` pads a single
    image in testing; the rows and columns added."""
    if pre.pad is None:
        return image, (0, 0)
    h, w = image.shape[1:]
    if pre.pad["size"] is not None:
        th, tw = pre.pad["size"]
    else:
        d = pre.pad["size_divisor"]
        th, tw = -(-h // d) * d, -(-w // d) * d
    bottom, right = max(th - h, 0), max(tw - w, 0)
    if not bottom and not right:
        return image, (0, 0)
    # mmseg pads the normalised image with `value`: the raw pixel that normalises to it
    raw = np.asarray(pre.pad["value"]) * np.asarray(pre.std) + np.asarray(pre.mean)
    out = np.empty((3, h + bottom, w + right), np.float32)
    out[:] = raw.astype(np.float32)[:, None, None]
    out[:, :h, :w] = image
    return out, (bottom, right)


def windows(h: int, w: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple]:
    """(y1, y2, x1, x2) of each window of mmseg's slide_inference over an h x w input."""
    (hc, wc), (hs, ws) = crop, stride
    rows = max(h - hc + hs - 1, 0) // hs + 1
    cols = max(w - wc + ws - 1, 0) // ws + 1
    found = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * hs + hc, h), min(c * ws + wc, w)
            found.append((max(y2 - hc, 0), y2, max(x2 - wc, 0), x2))
    return found


def slide(run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, pre: Preprocess):
    """Logits of a 3xHxW input window by window (`run` takes and gives NCHW, WINDOW_BATCH
    windows a call), each pixel the mean of the windows over it, as mmseg's slide_inference."""
    assert pre.slide is not None
    h, w = image.shape[1:]
    boxes = windows(h, w, pre.slide["crop_size"], pre.slide["stride"])
    total = np.zeros((pre.out_channels, h, w), np.float32)
    count = np.zeros((1, h, w), np.float32)
    for start in range(0, len(boxes), WINDOW_BATCH):
        chunk = boxes[start : start + WINDOW_BATCH]  # all of one size: the crop's, or the image's
        logits = run(np.stack([image[:, y1:y2, x1:x2] for y1, y2, x1, x2 in chunk]))
        for (y1, y2, x1, x2), out in zip(chunk, logits, strict=True):
            total[:, y1:y2, x1:x2] += out
            count[:, y1:y2, x1:x2] += 1
    return total / count


def _taps(size_in: int, size_out: int, align_corners: bool) -> tuple:
    """Source rows (two per output row) and the second one's weight, by torch's formula for
    bilinear interpolation to a given size (upsample_bilinear2d, no antialiasing)."""
    out = np.arange(size_out, dtype=np.float64)
    if align_corners:
        scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        source = out * scale
    else:
        source = np.maximum((out + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (source - low).astype(np.float32)


def bilinear(logits: np.ndarray, size: tuple[int, int], align_corners: bool) -> np.ndarray:
    """CxHxW logits resized to `size` (h, w) as mmseg's `resize` (F.interpolate, bilinear)
    does: rows then columns, each output value from two neighbours."""
    h, w = logits.shape[1:]
    if (h, w) == tuple(size):
        return logits
    low, high, weight = _taps(h, size[0], align_corners)
    rows = (
        logits[:, low, :] * (1 - weight)[None, :, None] + logits[:, high, :] * weight[None, :, None]
    )
    low, high, weight = _taps(w, size[1], align_corners)
    return rows[:, :, low] * (1 - weight) + rows[:, :, high] * weight


def labels(logits: np.ndarray, pre: Preprocess) -> np.ndarray:
    """The class of each pixel: the argmax, or for a single sigmoid channel the threshold, as
    mmseg's postprocess_result."""
    if logits.shape[0] == 1:
        return (1 / (1 + np.exp(-logits[0])) > pre.threshold).astype(np.int64)
    return logits.argmax(0)
