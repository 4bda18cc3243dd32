"""The side-by-side video of `launch.py watch`: each policy's view, scaled up, under its name and running
score, written by imageio (MP4 through imageio-ffmpeg's bundled ffmpeg, or GIF), plus a still for the report.

Panel sizes are multiples of 16 so ffmpeg's encoder takes the frames as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALE = 3
PANEL = 256  # 84 * 3 = 252, padded to a multiple of 16
HEADER = 32
GAP = 16
FPS = 15  # agent steps per second of video: a quarter of real time (frame skip 4)


def compose(views: list[tuple[str, list[np.ndarray], list[float]]]) -> list[np.ndarray]:
    """RGB frames: per step, every policy's 84x84 view with `name  score N` above it; a policy whose episode
    ended holds its last frame, marked 'episode over'."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=14)
    steps = max(len(frames) for _, frames, _ in views)
    width = len(views) * PANEL + (len(views) - 1) * GAP
    out = []
    for step in range(steps):
        canvas = Image.new("RGB", (width, PANEL + HEADER), (20, 20, 20))
        draw = ImageDraw.Draw(canvas)
        for i, (name, frames, scores) in enumerate(views):
            t = min(step, len(frames) - 1)
            view = np.kron(frames[t], np.ones((SCALE, SCALE), np.uint8))
            left = i * (PANEL + GAP)
            canvas.paste(Image.fromarray(view).convert("RGB"), (left + 2, HEADER + 2))
            over = "  (episode over)" if step >= len(frames) - 1 else ""
            draw.text((left + 4, 8), f"{name}   score {scores[t]:,.0f}{over}", fill=(240, 240, 240), font=font)
        out.append(np.asarray(canvas))
    return out


def write_video(path: str | Path, frames: list[np.ndarray]) -> None:
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000 / FPS, loop=0)
    else:
        iio.imwrite(path, frames, fps=FPS)


def write_still(path: str | Path, frame: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(Path(path), frame)
