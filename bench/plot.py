#!/usr/bin/python3
"""bench/plot.py -- draws the CSVs of bench/sweep.sh as SVG and prints their points as a table.

Usage: /usr/bin/python3 bench/plot.py POINTS.csv RTT.csv OUT_PREFIX

POINTS.csv has one row per point (round, script, workers, test, streams, mss, size, clients,
metric, kernel, switchyard, ratio, load1), RTT.csv one row per ping reply (round, workers,
phase, rtt_us). Writes OUT_PREFIX-size.svg (throughput against frame size and MSS),
-streams.svg (TCP against parallel streams), -clients.svg (new connections/s against clients) and
-rtt.svg (distribution of the ping RTT), each point with its ratio to the kernel of the same run
and the issue's target beside it; then prints a Markdown table of the points on stdout.

Standard library only (no matplotlib on the machines this runs on). A value measured in several
rounds is drawn as their mean; the table lists every round.
"""

import csv
import math
import sys
from collections import OrderedDict
from xml.sax.saxutils import escape

# one colour per worker setting (in the order the CSV names them); switchyard solid, the kernel
# of the same runs dashed in the same colour
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
PANEL_W, PANEL_H, LEGEND_W = 430, 250, 250
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 62, 16, 34, 46


def workers_label(w):
    return "--workers %s" % w if w != "default" else "default workers"


def nice_step(span, ticks=5):
    """A 1-2-5 step giving about `ticks` intervals over `span`."""
    raw = span / ticks if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt_tick(v):
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return "%gk" % (v / 1000)
    return "%g" % round(v, 6)


class Svg:
    def __init__(self, width, height, title):
        self.width, self.height = width, height
        self.parts = [
            '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'font-family="sans-serif" font-size="11">' % (width, height),
            '<rect width="100%" height="100%" fill="white"/>',
            '<text x="10" y="18" font-size="14" font-weight="bold">%s</text>' % escape(title),
        ]

    def text(self, x, y, s, anchor="start", size=None, rotate=None, colour="black"):
        extra = ' font-size="%d"' % size if size else ""
        if rotate is not None:
            extra += ' transform="rotate(%d %.1f %.1f)"' % (rotate, x, y)
        self.parts.append('<text x="%.1f" y="%.1f" text-anchor="%s" fill="%s"%s>%s</text>'
                          % (x, y, anchor, colour, extra, escape(s)))

    def line(self, x1, y1, x2, y2, colour="#999", width=1.0, dash=None):
        d = ' stroke-dasharray="%s"' % dash if dash else ""
        self.parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"%s/>'
                          % (x1, y1, x2, y2, colour, width, d))

    def polyline(self, pts, colour, dash=None, width=1.8):
        if not pts:
            return
        d = ' stroke-dasharray="%s"' % dash if dash else ""
        self.parts.append('<polyline fill="none" stroke="%s" stroke-width="%.1f"%s points="%s"/>'
                          % (colour, width, d, " ".join("%.1f,%.1f" % p for p in pts)))

    def dot(self, x, y, colour):
        self.parts.append('<circle cx="%.1f" cy="%.1f" r="2.8" fill="%s"/>' % (x, y, colour))

    def save(self, path):
        self.parts.append("</svg>")
        with open(path, "w") as f:
            f.write("\n".join(self.parts) + "\n")


def panel(svg, x0, y0, title, xlabel, ylabel, series, xticks, xrange_, hlines=(), ymax=None,
          markers=True):
    """One chart at (x0, y0). series: (label, colour, dash, [(x, y)]); xticks: [(x, label)];
    hlines: [(y, label)] drawn grey and dotted (targets, the kernel's 1.0)."""
    w, h = PANEL_W, PANEL_H
    left, right, top, bottom = x0 + MARGIN_L, x0 + w - MARGIN_R, y0 + MARGIN_T, y0 + h - MARGIN_B
    ys = [y for _, _, _, pts in series for _, y in pts] + [y for y, _ in hlines]
    top_value = ymax if ymax is not None else max(ys + [0]) * 1.08 or 1.0
    step = nice_step(top_value)
    top_value = math.ceil(top_value / step) * step
    lo, hi = xrange_
    sx = lambda x: left + (right - left) * ((x - lo) / (hi - lo) if hi > lo else 0.5)
    sy = lambda y: bottom - (bottom - top) * min(y, top_value) / top_value
    svg.text(x0 + 8, y0 + 20, title, size=12)
    for i in range(int(round(top_value / step)) + 1):
        v = i * step
        svg.line(left, sy(v), right, sy(v), colour="#e4e4e4")
        svg.text(left - 5, sy(v) + 4, fmt_tick(v), anchor="end")
    for x, label in xticks:
        svg.line(sx(x), bottom, sx(x), bottom + 4, colour="#666")
        svg.text(sx(x), bottom + 16, label, anchor="middle")
    svg.line(left, bottom, right, bottom, colour="#666")
    svg.line(left, top, left, bottom, colour="#666")
    svg.text((left + right) / 2, bottom + 34, xlabel, anchor="middle")
    svg.text(x0 + 14, (top + bottom) / 2, ylabel, anchor="middle", rotate=-90)
    for i, (y, label) in enumerate(hlines):
        svg.line(left, sy(y), right, sy(y), colour="#777", width=1.2, dash="2,3")
        # alternate ends, so that the labels of two close lines (1.0 and 0.95) do not overlap
        at, anchor = (right - 3, "end") if i % 2 == 0 else (left + 3, "start")
        svg.text(at, sy(y) - 4, label, anchor=anchor, colour="#555", size=10)
    for label, colour, dash, pts in series:
        scaled = [(sx(x), sy(y)) for x, y in pts]
        svg.polyline(scaled, colour, dash)
        if markers:
            for p in scaled:
                svg.dot(p[0], p[1], colour)
    # legend to the right of the panel
    lx, ly = x0 + w + 4, y0 + MARGIN_T + 4
    for label, colour, dash, _ in series:
        svg.line(lx, ly - 4, lx + 22, ly - 4, colour=colour, width=2.0, dash=dash)
        svg.text(lx + 27, ly, label, size=10)
        ly += 15


def load_points(path):
    with open(path) as f:
        return [r for r in csv.DictReader(f)]


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def select(rows, script, test, metric, **fixed):
    return [r for r in rows if r["script"] == script and r["test"] == test and r["metric"] == metric
            and all(r[k] == v for k, v in fixed.items())]


def sweep_series(rows, workers, key, cats, value=lambda r, which: num(r[which])):
    """Per worker setting: switchyard and its runs' kernel over the categories `cats` of column
    `key` (mean over rounds), and the ratio. Returns (value series, ratio series)."""
    values, ratios = [], []
    for i, w in enumerate(workers):
        colour = COLOURS[i % len(COLOURS)]
        mine = [r for r in rows if r["workers"] == w]
        k_pts, s_pts, r_pts = [], [], []
        for xi, c in enumerate(cats):
            at = [r for r in mine if r[key] == c]
            k, s = mean(value(r, "kernel") for r in at), mean(value(r, "switchyard") for r in at)
            ratio = mean(num(r["ratio"]) for r in at)
            if k is not None:
                k_pts.append((xi, k))
            if s is not None:
                s_pts.append((xi, s))
            if ratio is not None:
                r_pts.append((xi, ratio))
        values.append(("kernel (runs of %s)" % workers_label(w), colour, "5,4", k_pts))
        values.append(("switchyard, %s" % workers_label(w), colour, None, s_pts))
        ratios.append(("switchyard/kernel, %s" % workers_label(w), colour, None, r_pts))
    return values, ratios


def categories(rows, key):
    """The distinct values of column `key` in the order of the sweep (numbers ascending,
    "default" last)."""
    seen = OrderedDict((r[key], None) for r in rows if r[key] != "")
    return sorted(seen, key=lambda c: (c == "default", num(c) if num(c) is not None else 0))


def cat_ticks(cats, rename=None):
    return [(i, (rename or {}).get(c, c)) for i, c in enumerate(cats)], (-0.3, len(cats) - 0.7)


def value_and_ratio_row(svg, y0, title, unit, xlabel, rows, workers, key, cats, targets,
                        value=lambda r, which: num(r[which]), rename=None):
    values, ratios = sweep_series(rows, workers, key, cats, value)
    ticks, xr = cat_ticks(cats, rename)
    panel(svg, 0, y0, title, xlabel, unit, values, ticks, xr)
    hl = [(1.0, "kernel = 1.0")] + list(targets)
    panel(svg, PANEL_W + LEGEND_W, y0, title.split(":")[0] + ": switchyard / kernel", xlabel,
          "ratio (same run)", ratios, ticks, xr, hlines=hl)


def figure(path, title, rows_of_panels):
    width = 2 * (PANEL_W + LEGEND_W)
    svg = Svg(width, 30 + PANEL_H * len(rows_of_panels), title)
    for i, draw in enumerate(rows_of_panels):
        draw(svg, 30 + i * PANEL_H)
    svg.save(path)


def udp_gbps(r, which):
    """Delivered frames as Gbit/s of the bytes handed to the device (the wire size minus FCS)."""
    kpps = num(r[which])
    return None if kpps is None else kpps * 1e3 * (int(r["size"]) - 4) * 8 / 1e9


def draw_all(rows, rtt_rows, prefix):
    workers = list(OrderedDict((r["workers"], None) for r in rows))
    made = []

    def rows_for(script, test, metric, **fixed):
        return select(rows, script, test, metric, **fixed)

    udp = rows_for("compare.sh", "udp", "kpps")
    tcp_mss = rows_for("compare.sh", "tcp", "gbps", streams="1")
    size_rows = []
    if udp:
        cats = categories(udp, "size")
        size_rows.append(lambda svg, y, c=cats: value_and_ratio_row(
            svg, y, "Bridged UDP, one trafgen core: delivered", "Gbit/s", "frame size on the wire (bytes)",
            udp, workers, "size", c, [(1.5, "target at 64 B: 1.5")], value=udp_gbps))
    if len(categories(tcp_mss, "mss")) > 1:
        cats = categories(tcp_mss, "mss")
        size_rows.append(lambda svg, y, c=cats: value_and_ratio_row(
            svg, y, "Bridged TCP, one stream", "Gbit/s", "TCP MSS (bytes; iperf3 -M)",
            tcp_mss, workers, "mss", c, [(0.9, "target: 0.9")], rename={"default": "default (1448)"}))
    if size_rows:
        figure(prefix + "-size.svg", "Throughput against frame size: kernel bridge vs switchyard",
               size_rows)
        made.append(prefix + "-size.svg")

    stream_rows = []
    bridged = rows_for("compare.sh", "tcp", "gbps", mss="default")
    if len(categories(bridged, "streams")) > 1:
        stream_rows.append(lambda svg, y: value_and_ratio_row(
            svg, y, "Bridged TCP (iperf3 -P)", "Gbit/s", "parallel streams", bridged, workers,
            "streams", categories(bridged, "streams"), [(0.9, "target: 0.9")]))
    published = rows_for("compare-nat.sh", "tcp", "gbps")
    if len(categories(published, "streams")) > 1:
        stream_rows.append(lambda svg, y: value_and_ratio_row(
            svg, y, "Published port TCP (iperf3 -P)", "Gbit/s", "parallel streams", published,
            workers, "streams", categories(published, "streams"), [(0.95, "target: 0.95")]))
    if stream_rows:
        figure(prefix + "-streams.svg", "Throughput against parallel streams", stream_rows)
        made.append(prefix + "-streams.svg")

    conn = rows_for("compare-nat.sh", "conn", "rate")
    if conn:
        figure(prefix + "-clients.svg", "New connections/s through a published port against clients", [
            lambda svg, y: value_and_ratio_row(
                svg, y, "New TCP connections/s", "connections/s", "connrate client threads",
                conn, workers, "clients", categories(conn, "clients"), [(0.9, "target: 0.9")])])
        made.append(prefix + "-clients.svg")

    if rtt_rows:
        made.append(draw_rtt(rtt_rows, workers, prefix + "-rtt.svg"))
    return made


def percentile(sorted_vals, q):
    return sorted_vals[max(0, math.ceil(q * len(sorted_vals)) - 1)]


def draw_rtt(rtt_rows, workers, path):
    """CDF of every ping reply per (worker setting, phase), on a log axis of microseconds."""
    series = []
    all_vals = []
    order = workers + [w for w in OrderedDict((r["workers"], None) for r in rtt_rows) if w not in workers]
    for i, w in enumerate(order):
        colour = COLOURS[i % len(COLOURS)]
        for phase, dash in (("kernel", "5,4"), ("switchyard", None)):
            vals = sorted(float(r["rtt_us"]) for r in rtt_rows if r["workers"] == w and r["phase"] == phase)
            if not vals:
                continue
            all_vals += vals
            n = len(vals)
            pts = [(math.log10(max(v, 1.0)), (j + 1) / n) for j, v in enumerate(vals)]
            name = "kernel (runs of %s)" % workers_label(w) if phase == "kernel" else "switchyard, %s" % workers_label(w)
            series.append(("%s: median %.0f, p99 %.0f us" % (name, percentile(vals, 0.5), percentile(vals, 0.99)),
                           colour, dash, pts))
    lo = math.floor(math.log10(max(min(all_vals), 1.0)))
    hi = math.ceil(math.log10(max(all_vals)))
    if hi <= lo:
        hi = lo + 1
    ticks = []
    for d in range(lo, hi + 1):
        for m in (1, 2, 5):
            v = m * 10 ** d
            if lo <= math.log10(v) <= hi:
                ticks.append((math.log10(v), fmt_tick(v)))
    # a wider legend: its labels carry the median and p99
    svg = Svg(PANEL_W + 2 * LEGEND_W, 30 + PANEL_H, "Ping RTT distribution (ping -i 0.01), kernel bridge vs switchyard")
    panel(svg, 0, 30, "Cumulative fraction of replies", "RTT (us, log scale)", "fraction <= x",
          series, ticks, (lo, hi), hlines=[(0.5, "median"), (0.99, "p99")], ymax=1.0, markers=False)
    svg.save(path)
    return path


def fmt(metric, v):
    x = num(v)
    if x is None:
        return v or "NA"
    if metric == "gbps":
        return "%.2f" % x
    if metric in ("rate", "failures") or metric.endswith("_us"):
        return "{:,.0f}".format(x)
    return "%.1f" % x


NAMES = {
    ("compare.sh", "tcp"): "bridged TCP Gbit/s",
    ("compare.sh", "udp"): "bridged UDP kpps",
    ("compare.sh", "rtt"): "bridged ping RTT us",
    ("compare-nat.sh", "tcp"): "published TCP Gbit/s",
    ("compare-nat.sh", "conn"): "published conn/s",
}
SHOWN = {"gbps", "kpps", "rate", "avg_us", "p50_us", "p99_us", "failures"}


def table(rows):
    """Markdown: one row per point and round, one column per worker setting:
    kernel / switchyard (ratio), with the load average at the start of that run."""
    workers = list(OrderedDict((r["workers"], None) for r in rows))
    fail_any = any(num(r["kernel"]) or num(r["switchyard"]) for r in rows if r["metric"] == "failures")
    keys = OrderedDict()
    for r in rows:
        if r["metric"] not in SHOWN or (r["metric"] == "failures" and not fail_any):
            continue
        where = " ".join("%s %s" % (k, r[k]) for k in ("streams", "mss", "size", "clients") if r[k])
        what = NAMES.get((r["script"], r["test"]), r["test"])
        if r["metric"] in ("p50_us", "p99_us", "avg_us"):
            what += " (%s)" % {"avg_us": "avg", "p50_us": "median", "p99_us": "p99"}[r["metric"]]
        if r["metric"] == "failures":
            what = "published conn failures"
        keys.setdefault((r["round"], what, where), {})[r["workers"]] = r
    out = ["| round | figure | point | " + " | ".join("%s: kernel / sy (ratio), load" % workers_label(w) for w in workers) + " |",
           "|---|---|---|" + "---|" * len(workers)]
    for (rnd, what, where), by_w in keys.items():
        cells = []
        for w in workers:
            r = by_w.get(w)
            if r is None:
                cells.append("")
                continue
            ratio = r["ratio"] if r["metric"] != "failures" else ""
            cells.append("%s / %s%s, %s" % (fmt(r["metric"], r["kernel"]), fmt(r["metric"], r["switchyard"]),
                                            " (%s)" % ratio if ratio else "", r["load1"]))
        out.append("| %s | %s | %s | %s |" % (rnd, what, where or "-", " | ".join(cells)))
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    rows = load_points(sys.argv[1])
    try:
        with open(sys.argv[2]) as f:
            rtt_rows = list(csv.DictReader(f))
    except FileNotFoundError:
        rtt_rows = []
    if not rows:
        sys.stderr.write("plot.py: no points in %s\n" % sys.argv[1])
        return 1
    for path in draw_all(rows, rtt_rows, sys.argv[3]):
        print("plot.py: wrote %s" % path)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
