"""Text layout helpers shared by the CLI emulators (the NOSes' own table styles)."""

from __future__ import annotations

from collections.abc import Sequence


def grouped(n: int) -> str:
    """``1482117`` -> ``1,482,117`` (sonic-utilities' counter style)."""
    return f"{int(n):,}"


def tabulate_simple(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
                    align: str = "right") -> list[str]:
    """python-tabulate's "simple" format as sonic-utilities uses it: a column is as wide as
    its widest cell or its header plus two, columns are two spaces apart, a dashed rule under
    the header, cells right-aligned (``stralign='right'``) or left-aligned."""
    widths = []
    for i, head in enumerate(headers):
        cells = [len(r[i]) for r in rows]
        widths.append(max([len(head) + 2, *cells]))

    def just(text: str, width: int) -> str:
        return text.rjust(width) if align == "right" else text.ljust(width)

    out = ["  ".join(just(h, w) for h, w in zip(headers, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join(just(c, w) for c, w in zip(row, widths, strict=True)).rstrip())
    return out


def key_value_block(title: str, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """``tabulate(rows)`` without headers, under a title: the ``Profile: NAME`` blocks of
    ``show ecn`` and ``show buffer configuration``. A column of text is left-aligned."""
    w0 = max(len(k) for k, _ in pairs)
    w1 = max(len(v) for _, v in pairs)
    numeric = all(v.lstrip("-").isdigit() for _, v in pairs)
    rule = "-" * w0 + "  " + "-" * w1
    body = [(k.ljust(w0) + "  " + (v.rjust(w1) if numeric else v)).rstrip() for k, v in pairs]
    return [title, rule, *body, rule, ""]


def columns(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Comware-style fixed columns: every cell left-justified to its width, at least one
    space between cells (a wide number pushes the rest of the row right, as on the device)."""
    out = ""
    for cell, width in zip(cells, widths, strict=False):
        piece = cell.ljust(width)
        if not piece.endswith(" "):
            piece += " "
        out += piece
    if len(cells) > len(widths):
        out += " ".join(cells[len(widths):])
    return out.rstrip()
