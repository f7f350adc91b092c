#!/usr/bin/env python3
"""Tables and a plot of bench/journey-bench.sh's results.

    python3 bench/journey-report.py bench/journey-results

Reads DIR/results.json; writes DIR/results.md (one row per run) and
DIR/journey.svg (receive -> game server callback, p50 dashed and p99
solid, per topology and consumer, against the offered rate; log scale).
"""
import json
import math
import os
import sys
from xml.sax.saxutils import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def label(r):
    topo = "one node" if r["nodes"] == 1 else f"R{r['nodes']} cluster"
    parts = "" if r["partitions"] == 1 else f", {r['partitions']} partitions"
    return f"{topo}{parts}, {r['consumer']} consumer"


def ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"


def write_md(res, out):
    m = res["machine"]
    lines = [
        "# A move's journey: appliance receive time to the game server's callback",
        "",
        f"Command: `{res['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} vCPUs; appliance poller on core {m['appliance_core']}, generator and shipper on core {m['generator_core']}, "
        f"game server and {m['nats']} unpinned.",
        "",
        "Journey: the consumer library's histogram (wall clock at the callback minus the receive time in the message). "
        "PubAck: the shipper's histogram (receive time to the PubAck's arrival). Ack RTT: the generator's, "
        "source in the column.",
        "",
        "| stream | partitions | offered/s | consumer | accepted | consumed | journey p50 ms | p90 | p99 | p99.9 | max | receive→publish p50 / p99 ms | receive→PubAck p50 / p99 ms | ack RTT p99 µs | CPU s shipper / game server / nats | machine busy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        j = r["journey_us"] or {}
        rtt = r.get("ack_rtt_ns") or {}
        rtt99 = rtt.get("p99")
        rtt_cell = "-" if rtt99 is None else f"{rtt99 / 1000:.0f} ({r['ack_rtt_source']})"
        c = r["cpu_s"]
        rl = r.get("ship_read_lag_us") or {}
        al = r.get("ship_ack_lag_us") or {}
        lines.append(
            f"| {'one node' if r['nodes'] == 1 else 'R' + str(r['nodes'])} | {r['partitions']} | {r['offered_rate']} | {r['consumer']} | {r['accepted']} | {r['consumed']} | "
            f"{ms(j.get('p50'))} | {ms(j.get('p90'))} | {ms(j.get('p99'))} | {ms(j.get('p999'))} | {ms(j.get('max'))} | "
            f"{ms(rl.get('p50'))} / {ms(rl.get('p99'))} | {ms(al.get('p50'))} / {ms(al.get('p99'))} | {rtt_cell} | "
            f"{c['shipper']:.2f} / {c['consumer']:.2f} / {c['nats']:.2f} | {r.get('machine_busy_while_sending', 0) * 100:.0f} % |"
        )
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(res, out):
    rows = [r for r in res["rows"] if r.get("journey_us") and r["journey_us"].get("count")]
    if not rows:
        return
    series = {}
    for r in rows:
        series.setdefault(label(r), {}).setdefault(r["offered_rate"], []).append(r["journey_us"])
    rates = sorted({r["offered_rate"] for r in rows})
    vals = [q[k] for s in series.values() for qs in s.values() for q in qs for k in ("p50", "p99")]
    lo = 10 ** math.floor(math.log10(max(min(vals), 1) / 1000))
    hi = 10 ** math.ceil(math.log10(max(vals) / 1000))
    if hi <= lo:
        hi = lo * 10
    W, H, L, R, T, B = 760, 440, 70, 250, 50, 60
    pw, ph = W - L - R, H - T - B

    def x(rate):
        if len(rates) == 1:
            return L + pw / 2
        return L + pw * rates.index(rate) / (len(rates) - 1)

    def y(us):
        v = max(us / 1000, lo)
        return T + ph * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="15">A move\'s journey: appliance receive → game server callback</text>',
         f'<text x="{L}" y="38" fill="#555">{escape(res["machine"]["cpu"])}, {res["machine"]["cores"]} vCPUs; p99 solid, p50 dashed (log scale)</text>']
    d = lo
    while d <= hi * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if lo <= v <= hi:
                yy = y(v * 1000)
                s.append(f'<line x1="{L}" x2="{L + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#ddd"/>')
                s.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:g} ms</text>')
        d *= 10
    for rate in rates:
        s.append(f'<text x="{x(rate):.1f}" y="{T + ph + 18}" text-anchor="middle">{rate:,}</text>')
    s.append(f'<text x="{L + pw / 2}" y="{H - 15}" text-anchor="middle">offered moves/s</text>')
    s.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    for i, (name, by_rate) in enumerate(sorted(series.items())):
        col = COLOURS[i % len(COLOURS)]
        for q, dash in (("p99", ""), ("p50", ' stroke-dasharray="5,4"')):
            pts = []
            for rate in sorted(by_rate):
                v = sorted(h[q] for h in by_rate[rate])[len(by_rate[rate]) // 2]  # the median run
                pts.append(f"{x(rate):.1f},{y(v):.1f}")
                s.append(f'<circle cx="{x(rate):.1f}" cy="{y(v):.1f}" r="3" fill="{col}"/>')
            s.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{col}" stroke-width="2"{dash}/>')
        ly = T + 10 + i * 20
        s.append(f'<line x1="{L + pw + 15}" x2="{L + pw + 40}" y1="{ly}" y2="{ly}" stroke="{col}" stroke-width="2"/>')
        s.append(f'<text x="{L + pw + 46}" y="{ly + 4}">{escape(name)}</text>')
    s.append("</svg>")
    with open(os.path.join(out, "journey.svg"), "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/journey-results"
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    write_md(res, out)
    plot(res, out)


if __name__ == "__main__":
    main()
