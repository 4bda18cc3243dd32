"""The report's drawing surface: figures, one colour per series across every plot, and a record
of what was drawn so tests read a plot's promises from its artists rather than its pixels."""

from __future__ import annotations

from pathlib import Path

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def series_key(run_name: str, kind: str) -> str:
    """The series a learner's records, its evaluations and its checkpoints belong to, named as the
    reader sees it: `RUN` for a run's one student, `RUN net1/kl` for a sweep's pair, `RUN DQN`."""
    if kind == "dqn":
        return f"{run_name} DQN"
    for prefix in ("distill", "eval", "student"):
        if kind == prefix:
            return run_name
        if kind.startswith(prefix + "-"):  # PREFIX-PRESET-LOSS; a preset may hold a dash (multi-3), a loss not
            preset, _, loss = kind[len(prefix) + 1:].rpartition("-")
            return f"{run_name} {preset}/{loss}" if preset else f"{run_name} {loss}"
    return f"{run_name} {kind}"


class Plots:
    """Draws into the report's folder; remembers, per plot, how many points it drew and, per panel,
    its axes, labelled series, error bars and overlapping tick labels.

    Colours are given out up front (`assign`) in the order the runs were named, so a series keeps
    its colour in every plot and in every report over the same runs.
    """

    def __init__(self, out: Path):
        import matplotlib

        matplotlib.use("Agg")
        self.out, self.drawn, self.artists, self.legends = out, {}, {}, {}
        self.colors: dict[str, str] = {}

    def assign(self, keys: list[str]) -> None:
        import matplotlib

        keys = list(dict.fromkeys(keys))
        palette = [c for c in matplotlib.colormaps["tab10" if len(keys) <= 9 else "tab20"].colors
                   if len(set(c)) > 1]  # no greys: grey is the random policy's and the baselines' colour
        for key in keys:
            self.colors.setdefault(key, matplotlib.colors.to_hex(palette[len(self.colors) % len(palette)]))

    def color(self, key: str) -> str:
        if key not in self.colors:
            self.assign([key])
        return self.colors[key]

    def grid(self, name: str, title: str, panels: list[tuple[str, str, str]], columns: int = 3,
             size: tuple[float, float] = (4.6, 3.4)):
        """A figure of panels, one per (xlabel, ylabel, panel title), `columns` to a row."""
        import matplotlib.pyplot as plt

        rows = -(-len(panels) // columns)
        columns = min(columns, len(panels))
        fig, grid = plt.subplots(rows, columns, figsize=(size[0] * columns + 2.4, size[1] * rows + 0.6), dpi=100,
                                 squeeze=False, layout="constrained")
        axes = list(grid.flat)
        for ax, (xlabel, ylabel, panel_title) in zip(axes, panels):
            ax.set(xlabel=xlabel, ylabel=ylabel)
            ax.set_title(panel_title, fontsize=10)
            ax.grid(alpha=0.3)
        for ax in axes[len(panels):]:
            ax.axis("off")
        fig.suptitle(title)
        self.drawn[name] = 0
        return fig, axes[:len(panels)]

    def figure(self, name: str, title: str, *axes: tuple[str, str, str]):
        """A figure with one panel per (xlabel, ylabel, panel title), side by side."""
        return self.grid(name, title, list(axes), columns=len(axes), size=(6.5, 4))

    def count(self, name: str, points: int) -> None:
        self.drawn[name] += int(points)

    def save(self, name: str, fig, axes) -> str | None:
        """Writes NAME.png with one legend for all its panels, outside them, so no legend hides data
        (a series has one colour in every panel, so one entry says what it is everywhere)."""
        import matplotlib.pyplot as plt

        if self.drawn[name] == 0:
            plt.close(fig)
            del self.drawn[name]
            return None
        entries = {}
        for ax in axes:
            handles, labels = ax.get_legend_handles_labels()
            for handle, label in zip(handles, labels):
                entries.setdefault(label, handle)
        # the series first, then the keys drawn in black or grey (baselines, what a star means), so a
        # later panel's series never come after an earlier panel's keys
        labels = sorted(entries, key=lambda label: _style(entries[label])["color"] in KEY_COLOURS)
        if labels:
            fig.legend([entries[label] for label in labels], labels, loc="outside right upper", fontsize=7)
        self.legends[name] = labels
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        self.artists[name] = [_panel_record(ax, renderer) for ax in axes]
        fig.savefig(self.out / f"{name}.png")
        plt.close(fig)
        return f"{name}.png"


KEY_COLOURS = ("#000000", "#808080")  # black and grey: marks that explain, not series


def _labelled(artist) -> bool:
    label = artist.get_label()
    return bool(label) and not label.startswith("_")


def _panel_record(ax, renderer) -> dict:
    series = [{"label": a.get_label(), **_style(a)} for a in [*ax.lines, *ax.collections, *ax.containers]
              if _labelled(a)]
    bars = [c for c in ax.containers if getattr(c, "has_yerr", False)]
    points = [(float(x), float(y)) for c in bars if c.lines[0] is not None for x, y in c.lines[0].get_xydata()]
    points_px = [(float(x), float(y)) for c in bars if c.lines[0] is not None
                 for x, y in c.lines[0].get_transform().transform(c.lines[0].get_xydata())]
    bottom, top = ax.get_ylim()
    ends_outside = sum(1 for c in bars for segment in c.lines[2][0].get_segments() for _, y in segment
                       if y > top + 1e-9 or y < bottom - 1e-9)
    clip_marks = sum(1 for line in ax.lines if line.get_label() == "_clipped")
    markers = [{"color": _style(line)["color"], "x": [float(x) for x in line.get_xdata()],
                "px": [float(x) for x, _ in line.get_transform().transform(line.get_xydata())]}
               for line in ax.lines if line.get_marker() not in (None, "", "None", "_", "|")  # not bars' caps
               and line.get_label() != "_clipped" and len(line.get_xdata())]
    return {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "ylim": tuple(float(v) for v in ax.get_ylim()), "series": series, "errorbars": len(bars), "points": points,
            "points_px": points_px, "markers": markers,
            "x_px": tuple(float(v) for v in ax.get_window_extent(renderer).intervalx),
            "bar_ends_outside": ends_outside, "clip_marks": clip_marks,
            "overlapping_ticks": _overlapping_ticks(ax, renderer)}


def _overlapping_ticks(ax, renderer) -> list[str]:
    """Tick labels of one axis whose drawn boxes meet, as 'a / b' pairs."""
    pairs = []
    for axis in (ax.xaxis, ax.yaxis):
        labels = [t for t in axis.get_ticklabels(which="both") if t.get_visible() and t.get_text()]
        boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(1.0, 1.0).padded(2)) for t in labels]  # touching counts
        view = ax.get_window_extent(renderer)
        boxes = [(text, box) for text, box in boxes  # matplotlib keeps labels of ticks outside the view
                 if box.x1 >= view.x0 - 60 and box.x0 <= view.x1 + 60 and box.y1 >= view.y0 - 60 and box.y0 <= view.y1 + 60]
        for i, (a, box_a) in enumerate(boxes):
            pairs += [f"{a} / {b}" for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]
    return pairs


def _style(artist) -> dict:
    """Colour, line style and marker of a line, a scatter, a bar group or an error bar."""
    import matplotlib.colors

    if hasattr(artist, "get_linestyle") and hasattr(artist, "get_marker"):  # Line2D
        return {"color": matplotlib.colors.to_hex(artist.get_color()), "linestyle": artist.get_linestyle(),
                "marker": str(artist.get_marker()), "length": len(artist.get_xdata())}
    if hasattr(artist, "patches"):  # BarContainer
        return {"color": matplotlib.colors.to_hex(artist.patches[0].get_facecolor()), "linestyle": "bar", "marker": ""}
    if hasattr(artist, "lines"):  # ErrorbarContainer; with fmt="none" it has only its bars
        if artist.lines[0] is None:
            return {"color": matplotlib.colors.to_hex(artist.lines[2][0].get_color()[0]), "linestyle": "errorbar",
                    "marker": ""}
        return _style(artist.lines[0])
    if hasattr(artist, "get_segments"):  # LineCollection (hlines)
        return {"color": matplotlib.colors.to_hex(artist.get_color()[0]), "linestyle": "segment", "marker": ""}
    colors = artist.get_facecolor()  # PathCollection (scatter) or a band
    return {"color": matplotlib.colors.to_hex(colors[0]) if len(colors) else "none", "linestyle": "scatter",
            "marker": "o", "length": len(artist.get_offsets())}
