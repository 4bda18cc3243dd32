"""## Watch: the stills `launch.py watch` left in the run directories."""

from __future__ import annotations

from pathlib import Path


def watch_section(runs: list[dict], out_dir: Path) -> str:
    """The still `launch.py watch` left in a run directory (student and teacher on the same episode start)."""
    import shutil

    lines = []
    for index, r in enumerate(runs, 1):
        still = Path(r["path"]) / "watch.png"
        if still.is_file():
            name = f"watch-{index}-{r['name']}.png"  # two runs may share a folder name
            shutil.copyfile(still, out_dir / name)
            video = next((v.name for v in (Path(r["path"]) / "watch.mp4", Path(r["path"]) / "watch.gif")
                          if v.is_file()), None)
            lines.append(f"![{r['name']}: student beside teacher]({name})" + (
                f"\n\n{r['name']}: a frame from the middle of `{r['path']}/{video}`" if video else ""))
    return "## Watch: student and teacher on the same episode start\n\n" + "\n\n".join(lines) if lines else ""
