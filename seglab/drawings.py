"""What `seglab test show_dir=` and `seglab infer` draw: a ground truth | prediction pair under
captions that name its halves, and an overlay that leaves the photo as it is where nothing was
found. mmseg's visualizer draws the halves; these put them together and blend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

# what each half of a `show_dir=` drawing shows, written above it
CAPTIONS = ("ground truth", "prediction")
# a half narrower than this (pixels) is enlarged, so that its caption is legible
CAPTION_WIDTH = 200
CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX  # mmseg's, for its class names


def captioned(halves: Sequence[np.ndarray], captions: Sequence[str] = CAPTIONS) -> np.ndarray:
    """The drawings side by side (as mmseg lays them out) under a white band naming each; a
    drawing narrower than CAPTION_WIDTH pixels is enlarged by a whole factor (each pixel a
    square of pixels), so that its caption is legible."""
    factor = -(-CAPTION_WIDTH // halves[0].shape[1])
    halves = [half.repeat(factor, axis=0).repeat(factor, axis=1) for half in halves]
    width = halves[0].shape[1]
    scale, thickness = width / 400, max(1, round(width / 200))
    (_, height), baseline = cv2.getTextSize(captions[0], CAPTION_FONT, scale, thickness)
    pad = max(2, height // 3)
    drawn = []
    for half, caption in zip(halves, captions, strict=True):
        band = np.full((height + baseline + 2 * pad, width, 3), 255, np.uint8)
        (text_width, _), _ = cv2.getTextSize(caption, CAPTION_FONT, scale, thickness)
        origin = ((width - text_width) // 2, pad + height)
        cv2.putText(band, caption, origin, CAPTION_FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
        drawn.append(np.concatenate([band, half]))
    return np.concatenate(drawn, axis=1)


def overlay(photo: np.ndarray, prediction: np.ndarray, meta: Mapping, opacity: float) -> np.ndarray:
    """`photo` (RGB) with each pixel of a drawn class blended with its palette colour, as mmseg's
    visualizer blends it; a pixel of the background (a class named `background`, or coloured
    black) or of no class keeps the photo's value. mmseg blends every pixel, so its overlay
    darkens or greys the whole photo."""
    classes, palette = list(meta["classes"]), np.asarray(meta["palette"], np.float64)
    drawn = np.array(
        [n.lower() != "background" and any(c) for n, c in zip(classes, palette, strict=True)]
        + [False]
    )
    index = np.where(prediction < len(classes), prediction, len(classes))
    mask = drawn[index]
    out = photo.copy()
    colours = palette[index[mask]]
    out[mask] = (photo[mask] * (1 - opacity) + colours * opacity).astype(np.uint8)
    return out
