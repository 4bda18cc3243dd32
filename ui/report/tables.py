"""The markdown tables beside each plot, with the numbers drawn in it."""

from __future__ import annotations

RATIO_HEADER = ["% of teacher (low 95%)", "normalised % (low 95%)"]


def fmt(value, digits: int = 1) -> str:
    """Counts with thousands separators, scores to one decimal, agreements and fractions to three."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.{3 if abs(value) < 1 else digits}f}"
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def ratios(result: dict) -> list[str]:
    """Raw and normalised % of teacher, each with its lower 95% bound, or why they are withheld."""
    if result.get("pct_withheld"):
        return ["withheld", f"withheld ({result['pct_withheld'].split(':')[0]})"]
    cells = []
    for value, low in ((result.get("student_pct_of_teacher"), result.get("pct_low95")),
                       (result.get("normalised_pct"), result.get("normalised_low95"))):
        cells.append("n/a" if value is None else f"{value:.0f}% ({'n/a' if low is None else f'{low:.0f}%'})")
    return cells


def geometric_ratios(geometric: dict) -> list[str]:
    """`ratios` of a multi-task student's geometric means over its games."""
    return ratios({"student_pct_of_teacher": geometric.get("geometric_mean_pct_of_teacher"),
                   "pct_low95": geometric.get("geometric_mean_pct_low95"),
                   "normalised_pct": geometric.get("geometric_mean_normalised_pct"),
                   "normalised_low95": geometric.get("geometric_mean_normalised_low95")})
