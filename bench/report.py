#!/usr/bin/env python3
"""Turns a lab-bench results.json into results.md and SVG plots, beside it.

    usage: python3 bench/report.py bench/results/results.json [--out-dir DIR] [--cdf-rate PPS]

Re-runnable on its own: everything comes from the JSON that bench/lab-bench.sh
wrote. Python standard library only (the SVG is written by hand):
  results.md             a table per contender and a summary (max sustained
                         rate, XDP / socket and XDP / reflector ratios)
  acked-vs-offered.svg   acked/s against offered/s, with the y = x line
  rtt-vs-offered.svg     RTT p50 / p99 / p99.9 against offered/s (log y)
  latency-cdf-100k.svg   latency CDF and tail (1 - CDF) at the 100k/s step
"""
import argparse
import json
import math
import os
import statistics
import sys
from xml.sax.saxutils import escape

COLOURS = {"socket": "#1f77b4", "xdp": "#d62728", "reflector": "#2ca02c", "tokio": "#9467bd"}
SHAPES = {"socket": "circle", "xdp": "square", "reflector": "triangle", "tokio": "diamond"}
SPARE_COLOURS = ["#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
PCTS = [("p50", "p50", None, "circle"), ("p99", "p99", "7,4", "square"), ("p999", "p99.9", "2,3", "triangle")]


# ---------------------------------------------------------------- the data

def colour_of(name, order):
    if name in COLOURS:
        return COLOURS[name]
    others = [c for c in order if c not in COLOURS]
    return SPARE_COLOURS[others.index(name) % len(SPARE_COLOURS)] if name in others else "#333333"


def valid_latency(d):
    """A latency object with numbers in it (pktgen writes zeros when it has no sample)."""
    return isinstance(d, dict) and isinstance(d.get("p50"), (int, float)) and d.get("p50", 0) > 0


def rtt_of(row):
    """(latency dict, 'kernel' | 'user') for a row: kernel-timestamp RTT when present."""
    r = row.get("pktgen") or {}
    if valid_latency(r.get("latency_kernel_ns")):
        return r["latency_kernel_ns"], "kernel"
    if valid_latency(r.get("latency_ns")):
        return r["latency_ns"], "user"
    return None, None


def hist_of(row):
    """([[upper_ns, count], ...], 'kernel' | 'user'): histogram_kernel_ns when present."""
    r = row.get("pktgen") or {}
    for key, src in (("histogram_kernel_ns", "kernel"), ("histogram_ns", "user")):
        h = r.get(key)
        if isinstance(h, list) and any(c for _, c in h):
            return h, src
    return None, None


def rtt_sources(rows):
    """What the two RTTs measure, in pktgen's words when its report says (latency_source)."""
    for r in rows:
        src = (r.get("pktgen") or {}).get("latency_source")
        if isinstance(src, dict) and src:
            return "; ".join(f"*{'kernel' if 'kernel' in k else 'user-space'}* ({k}) = {v}" for k, v in src.items())
        if isinstance(src, str) and src:
            return src
    return ("*user-space* = pktgen's send time to its receive time; *kernel* = SO_TIMESTAMPING "
            "(sendmsg TX stamp to ack RX stamp), when the report has it")


def contender_loss(row):
    """The step's loss less the acks the generator's own receive socket
    dropped (the contender answered those): what the contender lost, in %
    of the moves expecting an ack. The whole loss when the report does not
    count the generator's drops."""
    p = row.get("pktgen") or {}
    d, lost, sent, by_design = (p.get(k) for k in ("rx_socket_drops", "lost", "sent", "silently_dropped_expected"))
    if row.get("loss_pct") is None or not all(isinstance(v, int) for v in (d, lost, sent, by_design)) or sent <= by_design:
        return row.get("loss_pct")
    return round(100.0 * max(lost - d, 0) / (sent - by_design), 4)


def sustained(row, threshold):
    loss = contender_loss(row)
    return not row.get("error") and loss is not None and loss < threshold


# Steal on the contender's core over one step (ms) at which the host, not
# the contender, decides what the step lost: a 4096-entry RX ring holds
# 20 ms of moves at 200 k/s, so a step whose core was stopped for this
# long in all cannot be judged.
HOST_STOPPED_MS = 100


def source_phrase(sources):
    s = set(x for x in sources if x)
    if s == {"kernel"}:
        return "kernel-timestamp RTT (SO_TIMESTAMPING: sendmsg TX stamp to ack RX stamp)"
    if s == {"user"}:
        return "user-space RTT (pktgen's send clock to its receive clock)"
    if s:
        return "kernel-timestamp RTT where the report has it, user-space RTT elsewhere"
    return "no RTT samples"


class Results:
    def __init__(self, path):
        with open(path) as f:
            self.j = json.load(f)
        j = self.j
        self.rows = j.get("rows", [])
        self.threshold = j.get("loss_threshold_pct", 0.1)
        order = list(j.get("contenders", {}).keys())
        for r in self.rows:
            if r["contender"] not in order:
                order.append(r["contender"])
        self.order = order

    def rows_of(self, c):
        return [r for r in self.rows if r["contender"] == c]

    def steps_of(self, c):
        """{asked_pps: [rows of every run]} in rate order."""
        steps = {}
        for r in self.rows_of(c):
            steps.setdefault(r["asked_pps"], []).append(r)
        return dict(sorted(steps.items()))

    def contender_core(self):
        """The core the contenders were pinned to (results.json's cores.appliance), or None."""
        c = (self.j.get("cores") or {}).get("appliance")
        return c if isinstance(c, int) else None

    def host_stopped(self, row):
        """The steal (ms) on the contender's core over the run's step when the run
        lost (not sustained, no error) and the host took HOST_STOPPED_MS or more of
        that core: the run neither sustains its step nor ends the sustained range.
        None otherwise, or when the sweep has no steal or no contender core."""
        core, st = self.contender_core(), row.get("steal_ms")
        if core is None or not isinstance(st, list) or core >= len(st) or not isinstance(st[core], int):
            return None
        if row.get("error") or contender_loss(row) is None or sustained(row, self.threshold):
            return None
        return st[core] if st[core] >= HOST_STOPPED_MS else None

    def max_sustained(self, c):
        """(offered_pps, asked_pps, rows, capped) of the highest step up to which every
        step, in every run, kept loss under the threshold: a step that lost is where
        the sustained range ends, whatever a higher step did (sweep H's xdp lost at
        375 k, then had all three runs clean at 500 k). A run the host stopped
        (host_stopped: its core stolen for HOST_STOPPED_MS or more over the step)
        is left out of its step: it neither sustains nor ends the range, and a
        step left with no run does not count. capped = that is the highest
        step tried (the real limit is at least that). None if the first step lost."""
        steps = self.steps_of(c)
        best = None
        for asked, rows in steps.items():
            judged = [r for r in rows if self.host_stopped(r) is None]
            if not rows or not all(sustained(r, self.threshold) for r in judged):
                break
            if not judged:
                continue
            best = (min(r["offered_pps"] for r in judged), asked, judged)
        if best is None:
            return None
        return best + (best[1] == max(steps),)

    def most_acked(self, c):
        """[the most acks/s of any step, per run] for c, in run order: its
        saturation throughput, whatever it lost on the way there."""
        per_run = {}
        for r in self.rows_of(c):
            if r.get("error") or not isinstance(r.get("acked_pps"), (int, float)):
                continue
            k = r.get("run", 1)
            per_run[k] = max(per_run.get(k, 0), r["acked_pps"])
        return [per_run[k] for k in sorted(per_run)]

    def floor_check(self):
        """None when the reflector (the floor) is at or above the XDP backend
        both in max sustained and in the median of most acked, or when the
        sweep lacks either; else why not. A reflector sustained up to the
        top of its own rates was never saturated: its limit is higher than
        anything the sweep shows, and it is not compared."""
        if not self.rows_of("reflector") or not self.rows_of("xdp"):
            return None
        why = []
        bx, br = self.max_sustained("xdp"), self.max_sustained("reflector")
        if br and br[3]:
            return None
        if bx and (br is None or br[1] < bx[1]):
            why.append(f"max sustained {br[1] if br else 'none'} < XDP's {bx[1]} asked/s")
        mx, mr = self.most_acked("xdp"), self.most_acked("reflector")
        if mx and mr and statistics.median(mr) < statistics.median(mx):
            why.append(f"median most acked {statistics.median(mr):,.0f} < XDP's {statistics.median(mx):,.0f}/s")
        return "; ".join(why) or None

    # captions
    def machine_line(self):
        m = self.j.get("machine", {})
        virt = m.get("virtualization")
        virt = f" ({virt})" if virt and virt != "none" else ""
        return f"{m.get('cpu_model') or 'unknown CPU'}, {m.get('nproc')} cores, Linux {m.get('kernel')}{virt}"

    def cores_line(self):
        c = self.j.get("cores", {})
        iso = (" (its core its own: every other movable thread moved off it by ironhoard-tune --isolate)"
               if self.j.get("contender_core_isolated") else "")
        return f"contender pinned to core {c.get('appliance', 0)}{iso}, pktgen (sender and receiver) to core {c.get('generator', 1)}"

    def run_line(self):
        j = self.j
        g = j.get("git", {})
        commit = (g.get("commit") or "?")[:12] + (" (dirty)" if g.get("dirty") else "")
        warm = f" after {j['warmup_s']} s of warm-up on other games" if j.get("warmup_s") else ""
        return (f"{fmt_num(j.get('seconds_per_step'))} s per step{warm}, {j.get('runs', 1)} run(s), "
                f"{j.get('date', '?')}, commit {commit}")

    def caption(self):
        return [f"{self.machine_line()}; {self.cores_line()}; {self.run_line()}",
                f"command: {self.j.get('command', '?')}"]


# ---------------------------------------------------------------- formatting

def fmt_num(v):
    if v is None:
        return "?"
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def fmt_rate(v, spec="g"):
    """A rate with a k/M suffix; spec ".3g" for three significant figures
    (labels: 49999 -> 50k)."""
    for div, unit in ((1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:{spec}}{unit}"
    return f"{v:{spec}}"


def fmt_rate3(v):
    return fmt_rate(v, ".3g")


def fmt_frac_pct(v):
    """A fraction as a percentage for axis labels: 0.001 -> 0.1 %."""
    return f"{100 * v:.10g} %"


def fmt_ns(v):
    for div, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if v >= div:
            return f"{v / div:g} {unit}"
    return f"{v:g} ns"


def us(v):
    if v is None:
        return "–"
    x = v / 1e3
    return f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def cell(v, fmt=str):
    return "–" if v is None else fmt(v)


# ---------------------------------------------------------------- results.md

def write_md(res, out_dir, cdf_name):
    j = res.j
    L = ["# IronHoard lab benchmark", ""]
    L += [f"- **Machine**: {res.machine_line()}",
          f"- **Cores**: {res.cores_line()}",
          f"- **Command**: `{j.get('command', '?')}`",
          f"- **Run**: {res.run_line()}",
          f"- **Generator**: `{(j.get('generator') or {}).get('command', '?')}`",
          f"- **Lab**: {(j.get('generator') or {}).get('lab', '?')}",
          f"- **Loss** = lost / (sent − datagrams dropped by design); a step is *sustained* when the contender's "
          "loss (the loss less the acks the generator's own receive socket dropped, where its reports count "
          f"them: the contender answered those) is under {res.threshold:g} %{' in every run' if j.get('runs', 1) > 1 else ''}; *max sustained* is the "
          "highest step up to which every step was sustained (a step that lost ends the range, whatever a "
          "higher one did; a run that lost while the host stole "
          f"{HOST_STOPPED_MS} ms or more of the contender's core over the step is *host-stopped* and not judged: "
          "it neither sustains its step nor ends the range). Acked counts every status (BUSY, RATE_LIMITED included: see their columns).",
          "- **RTT**: " + rtt_sources(res.rows) + ".",
          "- **rx_ring_full / rx_dropped**: the AF_XDP socket's counters over the step, from the appliance's "
          "stats socket just before it stopped (the reflector's: from the counters it prints on SIGUSR1 after "
          "the warm-up and at exit; a reflector with none there was not the limit of its step); **UDP RcvbufErrors**: the root namespace's /proc/net/snmp over the step "
          "(kernel UDP socket overflow: the socket and tokio contenders).",
          "- **steal ms**: each core's steal time over the step (/proc/stat): the hypervisor ran something "
          "else on this VM's vCPUs, e.g. a host CPU quota stopping them all (docs/performance.md, "
          "\"The generator's catch-up and the host's quota\").",
          "- **generator's rx drops**: acks the generator's own receive socket dropped (its UDP buffer full, or "
          "its AF_XDP socket's rx_ring_full + rx_dropped): its receive thread fell behind. They count in the "
          "loss, but the contender answered them."]
    m = j.get("machine") or {}
    if m.get("cpu_busy_pct_before") is not None:
        busy = m["cpu_busy_pct_before"] > 10
        L.append(f"- **Other work**: the cores were {m['cpu_busy_pct_before']:g} % busy in the second before the "
                 f"sweep (load average {m.get('loadavg_before', '?')} before, {m.get('loadavg_after', '?')} after)"
                 + (" — **something else was running: the figures are disturbed by it**" if busy else ""))
    for c, why in (j.get("skipped") or {}).items():
        L.append(f"- **Skipped**: {c} ({why})")
    L.append("")

    L += ["## Summary", "",
          "| contender | max sustained offered/s | at asked/s | acked/s there | RTT p99 there (µs, kernel when present) | |",
          "|---|---:|---:|---:|---:|---|"]
    best = {}
    for c in res.order:
        b = res.max_sustained(c)
        best[c] = b
        if not res.rows_of(c):
            continue
        if b is None:
            first, rows = next(iter(res.steps_of(c).items()))
            errs = [r["error"] for r in rows if r.get("error")]
            why = errs[0] if errs else f"loss ≥ {res.threshold:g} % already at the first step, {first}/s"
            L.append(f"| {c} | none | – | – | – | {why.replace('|', '/')} |")
            continue
        offered, asked, rows, capped = b
        lat = [rtt_of(r)[0] for r in rows]
        p99 = max((l["p99"] for l in lat if l), default=None)
        acked = min(r["acked_pps"] for r in rows)
        note = "the highest step tried: the limit is higher" if capped else ""
        stopped = [r for a, rs in res.steps_of(c).items() if a <= asked for r in rs if res.host_stopped(r) is not None]
        if stopped:
            note = "; ".join(filter(None, [note, f"{len(stopped)} host-stopped run(s) not judged up to there"]))
        L.append(f"| {c} | {offered} | {asked} | {acked} | {us(p99)} | {note} |")
    L.append("")

    def ratio(a, b):
        A, B = best.get(a), best.get(b)
        if not A or not B or not B[0]:
            return None, ""
        bound = ""
        if A[3] and not B[3]:
            bound = "≥ "
        elif B[3] and not A[3]:
            bound = "≤ "
        elif A[3] and B[3]:
            bound = "~ "
        return A[0] / B[0], bound

    r, bound = ratio("xdp", "socket")
    L.append(f"- XDP ÷ socket (max sustained): **{bound}{r:.2f}×**" if r else
             "- XDP ÷ socket: n/a (needs both with a sustained step)")
    r, bound = ratio("xdp", "reflector")
    L.append(f"- XDP ÷ reflector (max sustained): **{bound}{100 * r:.0f} %** of the bare AF_XDP floor" if r else
             "- XDP ÷ reflector: n/a (needs both with a sustained step)")
    L.append("")

    most = {c: res.most_acked(c) for c in res.order}
    if any(most.values()):
        L += ["## Saturation", "",
              "The most acks/s any step drew from each contender, per run, whatever it lost there "
              "(its throughput at saturation), and their median.", "",
              "| contender | most acked/s, per run | median |", "|---|---|---:|"]
        for c, v in most.items():
            if v:
                L.append(f"| {c} | {', '.join(f'{x:,.0f}' for x in v)} | {statistics.median(v):,.0f} |")
        L.append("")
        med = {c: statistics.median(v) for c, v in most.items() if v}
        if med.get("xdp") and med.get("socket"):
            L.append(f"- XDP ÷ socket at saturation (medians): **{med['xdp'] / med['socket']:.2f}×**")
        if med.get("xdp") and med.get("reflector"):
            L.append(f"- XDP ÷ reflector at saturation (medians): **{100 * med['xdp'] / med['reflector']:.1f} %**")
        L.append("")
    bad = res.floor_check()
    if bad:
        L += [f"**The reflector is not a floor in this sweep: {bad}.** It runs the appliance's rings, UMEM, "
              "batching and wake-up policy with one HMAC per move and nothing else, so it should bound the "
              "XDP backend from above; where it does not, XDP ÷ reflector measures nothing, and the sweep "
              "shows a disturbance or a reflector fault, not the appliance's margin.", ""]

    runs = j.get("runs", 1)
    for c in res.order:
        rows = res.rows_of(c)
        if not rows:
            continue
        meta = (j.get("contenders") or {}).get(c, {})
        L += [f"## {c}" + (f" — {meta['what']}" if meta.get("what") else ""), ""]
        if meta.get("command"):
            L += [f"`{meta['command']}`", ""]
        kern = any(valid_latency((r.get("pktgen") or {}).get("latency_kernel_ns")) for r in rows)
        svc = any(((r.get("appliance") or {}).get("move_ns") or {}).get("p99") is not None for r in rows)
        steal = any(r.get("steal_ms") for r in rows)
        gdrops = any((r.get("pktgen") or {}).get("rx_socket_drops") is not None for r in rows)
        head = (["run"] if runs > 1 else []) + ["asked/s", "offered/s", "acked/s", "loss %",
                                                 "RTT p50 µs", "RTT p99 µs", "RTT p99.9 µs"]
        if kern:
            head += ["kernel p50 µs", "kernel p99 µs", "kernel p99.9 µs"]
        head += ["BUSY", "rate limited", "rx_ring_full", "rx_dropped", "UDP RcvbufErrors"]
        if steal:
            head += ["steal ms (per core)"]
        if gdrops:
            head += ["generator's rx drops", "contender's loss %"]
        if svc:
            head += ["service p50 / p99 µs"]
        head += ["note"]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "|".join("---:" if h != "note" else "---" for h in head) + "|")
        for r in sorted(rows, key=lambda r: (r["asked_pps"], r["run"])):
            p = r.get("pktgen") or {}
            lu = p.get("latency_ns") if valid_latency(p.get("latency_ns")) else {}
            cells = ([str(r["run"])] if runs > 1 else []) + [
                str(r["asked_pps"]), cell(r.get("offered_pps")), cell(r.get("acked_pps")),
                cell(r.get("loss_pct"), lambda v: f"{v:.3f}"),
                us(lu.get("p50")), us(lu.get("p99")), us(lu.get("p999"))]
            if kern:
                lk = p.get("latency_kernel_ns") if valid_latency(p.get("latency_kernel_ns")) else {}
                cells += [us(lk.get("p50")), us(lk.get("p99")), us(lk.get("p999"))]
            cells += [cell(r.get("busy")), cell(r.get("rate_limited")), cell(r.get("rx_ring_full")),
                      cell(r.get("rx_dropped")), cell(r.get("udp_rcvbuf_errors"))]
            if steal:
                cells.append(" / ".join(map(str, r["steal_ms"])) if r.get("steal_ms") else "–")
            if gdrops:
                cells.append(cell(p.get("rx_socket_drops")))
                cells.append(cell(contender_loss(r), lambda v: f"{v:.3f}"))
            if svc:
                m = (r.get("appliance") or {}).get("move_ns") or {}
                cells.append(f"{us(m.get('p50'))} / {us(m.get('p99'))}" if m.get("p99") is not None else "–")
            notes = []
            if r.get("error"):
                notes.append(r["error"])
            if p.get("rate_shortfall"):
                notes.append("pktgen short of the asked rate")
            ks, ak = p.get("kernel_stamped_acks"), p.get("acked")
            if kern and isinstance(ks, int) and ak and ks < 0.99 * ak:
                notes.append(f"kernel stamps on {ks} of {ak} acks")
            if r.get("loss_pct") is not None and not sustained(r, res.threshold) and not r.get("error"):
                stopped = res.host_stopped(r)
                notes.append(f"host-stopped ({stopped} ms stolen from the contender's core): not judged"
                             if stopped is not None else "not sustained")
            cells.append("; ".join(notes).replace("|", "/"))
            L.append("| " + " | ".join(cells) + " |")
        L.append("")

    L += ["## Plots", "",
          "![acked vs offered](acked-vs-offered.svg)", "",
          "![RTT vs offered](rtt-vs-offered.svg)", "",
          f"![latency CDF]({cdf_name})", ""]
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(L))


# ---------------------------------------------------------------- SVG

class Axis:
    def __init__(self, lo, hi, log=False):
        self.lo, self.hi, self.log = lo, hi, log

    @classmethod
    def linear_from(cls, vmax, n=6):
        vmax = vmax * 1.04 if vmax > 0 else 1.0
        step = nice_step(vmax / n)
        return cls(0.0, math.ceil(vmax / step) * step)

    @classmethod
    def log_from(cls, vmin, vmax):
        lo = 10 ** math.floor(math.log10(vmin))
        hi = 10 ** math.ceil(math.log10(vmax))
        if hi <= lo:
            hi = lo * 10
        return cls(lo, hi, True)

    def frac(self, v):
        if self.log:
            return (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (v - self.lo) / (self.hi - self.lo)

    def ticks(self, n=6):
        """[(value, major, labelled)]"""
        if self.log:
            k0, k1 = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            few = (k1 - k0) <= 2
            out = []
            for k in range(k0, k1 + 1):
                for m in range(1, 10):
                    v = m * 10.0 ** k
                    if self.lo * 0.999 <= v <= self.hi * 1.001:
                        out.append((v, m == 1, m == 1 or (few and m in (2, 5))))
            return out
        step = nice_step((self.hi - self.lo) / n)
        i0 = math.ceil(self.lo / step - 1e-9)
        out = []
        i = i0
        while i * step <= self.hi + step * 1e-9:
            out.append((i * step, True, True))
            i += 1
        return out


def nice_step(raw):
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw * 0.999:
            return m * mag
    return 10 * mag


class Svg:
    def __init__(self, w, h, title):
        self.w, self.h, self.items = w, h, []
        self.title = title
        self.n_clip = 0

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight=None, fill="#222", rotate=None, style=None):
        attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"'
        if weight:
            attrs += f' font-weight="{weight}"'
        if rotate is not None:
            attrs += f' transform="rotate({rotate} {x:.1f} {y:.1f})"'
        if style:
            attrs += f' font-style="{style}"'
        self.add(f"<text {attrs}>{escape(str(s))}</text>")

    def line(self, x1, y1, x2, y2, stroke="#000", width=1.0, dash=None, opacity=None):
        a = f'x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="{width}"'
        if dash:
            a += f' stroke-dasharray="{dash}"'
        if opacity is not None:
            a += f' stroke-opacity="{opacity}"'
        self.add(f"<line {a}/>")

    def marker(self, x, y, shape, colour, filled=True, r=4.0):
        fill = colour if filled else "#ffffff"
        common = f'fill="{fill}" stroke="{colour}" stroke-width="1.5"'
        if shape == "square":
            self.add(f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" {common}/>')
        elif shape == "diamond":
            r *= 1.3
            pts = f"{x:.1f},{y - r:.1f} {x + r:.1f},{y:.1f} {x:.1f},{y + r:.1f} {x - r:.1f},{y:.1f}"
            self.add(f'<polygon points="{pts}" {common}/>')
        elif shape == "triangle":
            pts = f"{x:.1f},{y - r * 1.2:.1f} {x - r * 1.1:.1f},{y + r * 0.8:.1f} {x + r * 1.1:.1f},{y + r * 0.8:.1f}"
            self.add(f'<polygon points="{pts}" {common}/>')
        else:
            self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" {common}/>')

    def wrapped(self, x, y, s, size, width_px, fill="#555"):
        """Text wrapped at about width_px; returns the y below it."""
        per_line = max(20, int(width_px / (size * 0.62)))
        for line in wrap(s, per_line):
            self.text(x, y, line, size=size, fill=fill)
            y += size * 1.35
        return y

    def save(self, path, desc):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="{FONT}">')
        body = [head, f"<title>{escape(self.title)}</title>", f"<desc>{escape(desc)}</desc>",
                f'<rect x="0" y="0" width="{self.w}" height="{self.h}" fill="#ffffff"/>'] + self.items + ["</svg>"]
        with open(path, "w") as f:
            f.write("\n".join(body) + "\n")


def wrap(s, n):
    out, cur = [], ""
    for word in s.split(" "):
        while len(word) > n:  # a long path: cut it
            if cur:
                out.append(cur)
                cur = ""
            out.append(word[:n])
            word = word[n:]
        if cur and len(cur) + 1 + len(word) > n:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(cur)
    return out


class Panel:
    """A plot area on an Svg: axes, grid, tick labels, clipped data."""

    def __init__(self, svg, x0, y0, w, h, xa, ya, xlabel, ylabel, xfmt, yfmt):
        self.svg, self.x0, self.y0, self.w, self.h = svg, x0, y0, w, h
        self.xa, self.ya, self.xfmt, self.yfmt = xa, ya, xfmt, yfmt
        svg.n_clip += 1
        self.clip = f"clip{svg.n_clip}"
        svg.add(f'<clipPath id="{self.clip}"><rect x="{x0 - 6}" y="{y0 - 6}" width="{w + 12}" height="{h + 12}"/></clipPath>')
        self._frame(xlabel, ylabel)
        svg.add(f'<g clip-path="url(#{self.clip})">')

    def done(self):
        self.svg.add("</g>")

    def px(self, x, y):
        return self.x0 + self.xa.frac(x) * self.w, self.y0 + self.h - self.ya.frac(y) * self.h

    def ok(self, x, y):
        return not ((self.xa.log and x <= 0) or (self.ya.log and y <= 0))

    def _frame(self, xlabel, ylabel):
        s, x0, y0, w, h = self.svg, self.x0, self.y0, self.w, self.h
        s.add(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#fcfcfc" stroke="none"/>')
        for v, major, lab in self.xa.ticks():
            X = x0 + self.xa.frac(v) * w
            s.line(X, y0, X, y0 + h, stroke="#dddddd" if major else "#eeeeee", width=1)
            s.line(X, y0 + h, X, y0 + h + (6 if major else 3), stroke="#444")
            if lab:
                s.text(X, y0 + h + 20, self.xfmt(v), size=12, anchor="middle", fill="#333")
        for v, major, lab in self.ya.ticks():
            Y = y0 + h - self.ya.frac(v) * h
            s.line(x0, Y, x0 + w, Y, stroke="#dddddd" if major else "#eeeeee", width=1)
            s.line(x0 - (6 if major else 3), Y, x0, Y, stroke="#444")
            if lab:
                s.text(x0 - 9, Y + 4, self.yfmt(v), size=12, anchor="end", fill="#333")
        s.add(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444" stroke-width="1"/>')
        s.text(x0 + w / 2, y0 + h + 42, xlabel, size=13, anchor="middle")
        s.text(x0 - 62, y0 + h / 2, ylabel, size=13, anchor="middle", rotate=-90)

    def polyline(self, pts, colour, dash=None, width=2.0, opacity=None):
        pts = [self.px(x, y) for x, y in pts if self.ok(x, y)]
        if len(pts) < 2:
            return
        p = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        a = f'points="{p}" fill="none" stroke="{colour}" stroke-width="{width}" stroke-linejoin="round"'
        if dash:
            a += f' stroke-dasharray="{dash}"'
        if opacity is not None:
            a += f' stroke-opacity="{opacity}"'
        self.svg.add(f"<polyline {a}/>")

    def marker(self, x, y, shape, colour, filled=True):
        if self.ok(x, y):
            X, Y = self.px(x, y)
            self.svg.marker(X, Y, shape, colour, filled)

    def note(self, s):
        self.svg.text(self.x0 + self.w / 2, self.y0 + self.h / 2, s, size=14, anchor="middle", fill="#888")


def figure(res, title, subtitle, w, h):
    s = Svg(w, h, title)
    s.text(24, 30, title, size=18, weight="bold")
    s.text(24, 52, subtitle, size=13, fill="#444")
    return s


def caption(s, res, y):
    for line in res.caption():
        y = s.wrapped(24, y, line, 11, s.w - 48)


def legend(s, x, y, entries):
    """entries: ('head', text) | ('series', text, colour, dash, shape, filled)"""
    for e in entries:
        if e[0] == "head":
            y += 6
            s.text(x, y, e[1], size=12, weight="bold", fill="#333")
            y += 18
            continue
        _, text, colour, dash, shape, filled = e
        if dash != "none":
            s.line(x, y - 4, x + 30, y - 4, stroke=colour, width=2, dash=dash)
        if shape:
            s.marker(x + 15, y - 4, shape, colour, filled)
        for i, part in enumerate(wrap(text, 24)):
            s.text(x + 38, y + i * 15, part, size=12)
        y += 15 * max(1, len(wrap(text, 24))) + 5
    return y


def by_step(res, c):
    """[(asked, rows)] with rows that have a report."""
    return [(a, [r for r in rows if r.get("pktgen")]) for a, rows in res.steps_of(c).items()]


def series(res):
    """Each contender that has steps: (name, [(asked, rows)], colour)."""
    for c in res.order:
        steps = [(a, rows) for a, rows in by_step(res, c) if rows]
        if steps:
            yield c, steps, colour_of(c, res.order)


def plot_acked(res, out):
    W, H = 1040, 700
    s = figure(res, "Acked vs offered rate",
               "acks/s the generator received against moves/s it sent; dashed: y = x (every move acked)", W, H)
    vals = [v for r in res.rows for v in (r.get("offered_pps"), r.get("acked_pps")) if v]
    ax = Axis.linear_from(max(vals) if vals else 1)
    p = Panel(s, 100, 80, 640, 480, ax, Axis(ax.lo, ax.hi), "offered (moves/s, pktgen)", "acked (acks/s)", fmt_rate, fmt_rate)
    p.polyline([(0, 0), (ax.hi, ax.hi)], "#999999", dash="6,4", width=1.5)
    entries = [("head", "contender")]
    for c, steps, col in series(res):
        line = [(statistics.mean(r["offered_pps"] for r in rows), statistics.mean(r["acked_pps"] for r in rows))
                for _, rows in steps]
        shape = SHAPES.get(c, "circle")
        p.polyline(line, col, opacity=0.85)
        for _, rows in steps:
            for r in rows:
                p.marker(r["offered_pps"], r["acked_pps"], shape, col, sustained(r, res.threshold))
        b = res.max_sustained(c)
        label = c + (f" (max sustained {fmt_rate3(b[0])}/s)" if b else " (none sustained)")
        entries.append(("series", label, col, None, shape, True))
    if len(entries) == 1:
        p.note("no data")
    p.done()
    entries += [("head", "markers"),
                ("series", f"filled: loss < {res.threshold:g} %", "#555555", "none", "circle", True),
                ("series", f"hollow: loss ≥ {res.threshold:g} %", "#555555", "none", "circle", False),
                ("series", "y = x", "#999999", "6,4", None, True)]
    legend(s, 780, 96, entries)
    caption(s, res, 640)
    s.save(os.path.join(out, "acked-vs-offered.svg"), " / ".join(res.caption()))


def plot_rtt(res, out):
    W, H = 1040, 720
    sources = [rtt_of(r)[1] for r in res.rows]
    src = source_phrase(sources)
    s = figure(res, "RTT vs offered rate: p50, p99, p99.9", src, W, H)
    xs = [r["offered_pps"] for r in res.rows if r.get("offered_pps")]
    ys = [l[k] for r in res.rows for l in [rtt_of(r)[0]] if l for k in ("p50", "p99", "p999") if l.get(k)]
    ax = Axis.linear_from(max(xs) if xs else 1)
    ay = Axis.log_from(min(ys), max(ys)) if ys else Axis(1e3, 1e6, True)
    p = Panel(s, 100, 80, 640, 500, ax, ay, "offered (moves/s, pktgen)", "round-trip time (log)", fmt_rate, fmt_ns)
    entries = [("head", "contender")]
    for c, steps, col in series(res):
        drawn = False
        for key, _, dash, shape in PCTS:
            line = []
            for _, rows in steps:
                pts = [(r["offered_pps"], rtt_of(r)[0][key], sustained(r, res.threshold)) for r in rows if rtt_of(r)[0]]
                if not pts:
                    continue
                line.append((statistics.median(x for x, _, _ in pts), statistics.median(y for _, y, _ in pts)))
                for x, y, ok in pts:
                    p.marker(x, y, shape, col, ok)
            p.polyline(line, col, dash=dash)
            drawn = drawn or bool(line)
        if drawn:
            entries.append(("series", c, col, None, None, True))
    if len(entries) == 1:
        p.note("no RTT samples")
    p.done()
    entries += [("head", "percentile")]
    entries += [("series", name, "#555555", dash, shape, True) for _, name, dash, shape in PCTS]
    entries += [("head", "markers"),
                ("series", f"filled: loss < {res.threshold:g} %", "#555555", "none", "circle", True),
                ("series", f"hollow: loss ≥ {res.threshold:g} %", "#555555", "none", "circle", False)]
    legend(s, 780, 96, entries)
    caption(s, res, 660)
    s.save(os.path.join(out, "rtt-vs-offered.svg"), " / ".join(res.caption()))


def plot_cdf(res, out, rate, name):
    W, H = 1320, 660
    series = []  # (contender, [(upper_ns, cdf)], total, source, rows)
    for c in res.order:
        rows = [r for r in res.rows_of(c) if r["asked_pps"] == rate and r.get("pktgen")]
        merged, srcs = {}, set()
        for r in rows:
            h, src = hist_of(r)
            if h:
                srcs.add(src)
                for upper, count in h:
                    merged[upper] = merged.get(upper, 0) + count
        total = sum(merged.values())
        if not total:
            continue
        cum, pts = 0, []
        for upper in sorted(merged):
            cum += merged[upper]
            pts.append((upper, cum / total))
        series.append((c, pts, total, srcs, rows))
    src = source_phrase([x for _, _, _, ss, _ in series for x in ss])
    s = figure(res, f"Latency CDF at the {fmt_rate(rate)}/s step",
               f"{src}; left: CDF, right: its tail, 1 − CDF", W, H)
    xs = [x for _, pts, _, _, _ in series for x, _ in pts]
    ax = Axis.log_from(min(xs) / 1.25, max(xs)) if xs else Axis(1e3, 1e6, True)
    left = Panel(s, 100, 80, 430, 440, ax, Axis(0.0, 1.0), "round-trip time (log)", "acks with RTT ≤ x", fmt_ns,
                 fmt_frac_pct)
    for c, pts, _, _, _ in series:
        left.polyline([(pts[0][0] / 1.25, 0.0)] + pts, colour_of(c, res.order))
    if not series:
        left.note(f"no contender ran the {rate}/s step")
    left.done()
    min_tail = min((1.0 / t for _, _, t, _, _ in series), default=1e-4)
    ty = Axis.log_from(min_tail, 1.0)
    right = Panel(s, 620, 80, 430, 440, ax, ty, "round-trip time (log)", "acks with RTT > x (log)", fmt_ns,
                  fmt_frac_pct)
    for c, pts, total, _, _ in series:
        tail = [(pts[0][0] / 1.25, 1.0)] + [(x, 1.0 - f) for x, f in pts if 1.0 - f > 1e-12]
        right.polyline(tail, colour_of(c, res.order))
    for q in (0.5, 0.99, 0.999):
        if ty.lo <= 1 - q:
            right.polyline([(ax.lo, 1 - q), (ax.hi, 1 - q)], "#aaaaaa", dash="3,3", width=1)
    right.done()
    for q, lab in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")):
        if ty.lo <= 1 - q:
            _, Y = right.px(ax.hi, 1 - q)
            s.text(right.x0 + right.w - 4, Y - 4, lab, size=11, anchor="end", fill="#888")
    entries = [("head", "contender")]
    for c, _, total, srcs, rows in series:
        loss = max((r["loss_pct"] for r in rows if r.get("loss_pct") is not None), default=None)
        offered = statistics.mean(r["offered_pps"] for r in rows)
        runs = f" over {len(rows)} runs" if len(rows) > 1 else ""
        lab = (f"{c}: offered {fmt_rate3(offered)}/s, {total} acks{runs}"
               + (f", {'worst ' if runs else ''}loss {loss:.3g} %" if loss is not None else ""))
        if srcs == {"user"} and src.startswith("kernel-timestamp RTT where"):
            lab += " (user-space)"
        entries.append(("series", lab, colour_of(c, res.order), None, None, True))
    legend(s, 1070, 96, entries)
    caption(s, res, 600)
    s.save(os.path.join(out, name), " / ".join(res.caption()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?", default="bench/results/results.json")
    ap.add_argument("--out-dir", help="where results.md and the SVGs go (default: beside the JSON)")
    ap.add_argument("--cdf-rate", type=int, default=100000, help="the asked rate of the CDF plot (default 100000)")
    a = ap.parse_args()
    res = Results(a.results)
    out = a.out_dir or os.path.dirname(os.path.abspath(a.results))
    os.makedirs(out, exist_ok=True)
    cdf_name = f"latency-cdf-{fmt_rate(a.cdf_rate)}.svg"
    write_md(res, out, cdf_name)
    plot_acked(res, out)
    plot_rtt(res, out)
    plot_cdf(res, out, a.cdf_rate, cdf_name)
    print(f"report: {os.path.join(out, 'results.md')}, acked-vs-offered.svg, rtt-vs-offered.svg, {cdf_name}")


if __name__ == "__main__":
    sys.exit(main())
