"""The side-by-side video of `launch.py watch`: each policy's view, scaled up, under its name and running
score, streamed frame by frame to imageio (MP4 through imageio-ffmpeg's bundled ffmpeg, or GIF), so a
long episode costs no more memory than a short one; plus a still for the report.

Panel sizes are multiples of 16 so ffmpeg's encoder takes the frames as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

SCALE = 3
PANEL = 256  # 84 * 3 = 252, padded to a multiple of 16
HEADER = 32
GAP = 16
FPS = 15  # agent steps per second of video: a quarter of real time (frame skip 4)


def compose(views: list[tuple[str, list[np.ndarray], list[float], bool]]) -> Iterator[np.ndarray]:
    """RGB frames, one per step: every policy's 84x84 view with `name  score N` above it. A policy whose
    episode ended holds its last frame, marked 'episode over'; one cut at --max-steps, 'cut'."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    steps = max(len(frames) for _, frames, _, _ in views)
    width = len(views) * PANEL + (len(views) - 1) * GAP
    for step in range(steps):
        canvas = Image.new("RGB", (width, PANEL + HEADER), (20, 20, 20))
        draw = ImageDraw.Draw(canvas)
        for i, (name, frames, scores, ended) in enumerate(views):
            t = min(step, len(frames) - 1)
            view = np.kron(frames[t], np.ones((SCALE, SCALE), np.uint8))
            left = i * (PANEL + GAP)
            canvas.paste(Image.fromarray(view).convert("RGB"), (left + 2, HEADER + 2))
            last = "  (episode over)" if ended else "  (cut)"
            draw.text((left + 4, 8), f"{name}   score {scores[t]:,.0f}{last if t == len(frames) - 1 else ''}",
                      fill=(240, 240, 240), font=font)
        yield np.asarray(canvas)


def write_video(path: str | Path, frames: Iterator[np.ndarray], still_at: int) -> np.ndarray:
    """Streams `frames` into `path` and returns frame `still_at` (the still)."""
    import imageio.v2 as imageio

    path, still = Path(path), None
    options = {"duration": 1000 / FPS, "loop": 0} if path.suffix == ".gif" else {"fps": FPS, "macro_block_size": 16}
    with imageio.get_writer(path, **options) as writer:
        for index, frame in enumerate(frames):
            writer.append_data(frame)
            if index == still_at or still is None:
                still = frame
    return still


def write_still(path: str | Path, frame: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(Path(path), frame)
