"""Bar charts as inline SVG, drawn on the server: no script, nothing to load, readable
without JavaScript (the Content-Security-Policy allows no inline script or style, and SVG
presentation attributes are neither).  Every chart has a title and each bar a tooltip;
the page shows the same figures as a table beside it."""

from __future__ import annotations

from twisted.web.template import Tag

WIDTH = 640
ROW = 26
LABEL = 200
VALUE = 110


def _svg(title: str, height: int, *children) -> Tag:
    return Tag("svg")(Tag("title")(title), *children, viewBox=f"0 0 {WIDTH} {height}",
                      role="img", class_="chart", **{"aria-label": title})


def bar_chart(title: str, bars: list[tuple[str, float, str]]) -> Tag:
    """Horizontal bars: ``(label, value, value as shown)`` each, longest to the scale."""
    top = max((value for _, value, _ in bars), default=0) or 1
    area = WIDTH - LABEL - VALUE
    height = max(ROW, ROW * len(bars)) + 4
    rows = []
    for index, (label, value, shown) in enumerate(bars):
        y = 2 + index * ROW
        length = max(1, round(area * value / top)) if value else 0
        rows.append(Tag("g")(
            Tag("title")(f"{label}: {shown}"),
            Tag("text")(label if len(label) <= 28 else label[:27] + "…", x="0",
                        y=str(y + 17), class_="label"),
            Tag("rect")(x=str(LABEL), y=str(y + 4), width=str(length), height=str(ROW - 8),
                        rx="2", class_="bar"),
            Tag("text")(shown, x=str(LABEL + length + 6), y=str(y + 17), class_="value")))
    return _svg(title, height, *rows)


def column_chart(title: str, columns: list[tuple[str, float, str]]) -> Tag:
    """Vertical columns over time (``(label, value, value as shown)``, in order); labels
    under every few columns so that they never overlap."""
    top = max((value for _, value, _ in columns), default=0) or 1
    plot = 160
    height = plot + 40
    step = (WIDTH - 40) / max(1, len(columns))
    every = max(1, round(len(columns) / 8))
    parts = [Tag("line")(x1="30", y1=str(plot + 4), x2=str(WIDTH), y2=str(plot + 4),
                         class_="axis"),
             Tag("text")(_number(max((v for _, v, _ in columns), default=0)), x="0", y="14",
                         class_="label")]
    for index, (label, value, shown) in enumerate(columns):
        x = 34 + index * step
        length = round(plot * value / top) if value else 0
        parts.append(Tag("g")(
            Tag("title")(f"{label}: {shown}"),
            Tag("rect")(x=f"{x:.1f}", y=str(plot + 4 - length), width=f"{max(2, step - 3):.1f}",
                        height=str(length), rx="1", class_="bar")))
        if index % every == 0:  # a day as MM-DD under its column
            short = label[5:] if len(label) == 10 and label[4] == "-" else label
            parts.append(Tag("text")(short, x=f"{x:.1f}", y=str(plot + 24), class_="label"))
    return _svg(title, height, *parts)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"
