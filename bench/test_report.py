"""Unit tests of bench/report.py's summary rule: `python3 -m unittest bench/test_report.py`
(make test runs them)."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import report  # noqa: E402


def row(c, asked, run, loss, error=None):
    return {"contender": c, "asked_pps": asked, "offered_pps": asked - 1, "acked_pps": asked - 1,
            "run": run, "loss_pct": loss, "error": error}


def results(rows):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"rows": rows, "loss_threshold_pct": 0.1, "contenders": {}}, f)
    f.close()
    r = report.Results(f.name)
    os.unlink(f.name)
    return r


class MaxSustained(unittest.TestCase):
    def test_the_range_ends_at_the_first_step_that_lost_in_any_run(self):
        rows = [row("xdp", a, run, 0.0) for a in (100, 200, 300, 500) for run in (1, 2, 3)]
        rows += [row("xdp", 375, 1, 0.74), row("xdp", 375, 2, 0.0), row("xdp", 375, 3, 0.0)]
        offered, asked, _, capped = results(rows).max_sustained("xdp")
        self.assertEqual((asked, offered, capped), (300, 299, False))

    def test_an_errored_step_ends_it_too_and_a_clean_sweep_is_capped(self):
        rows = [row("s", 100, 1, 0.0), row("s", 200, 1, None, error="did not start"), row("s", 300, 1, 0.0)]
        self.assertEqual(results(rows).max_sustained("s")[1], 100)
        clean = [row("r", a, 1, 0.05) for a in (100, 200)]
        self.assertEqual(results(clean).max_sustained("r")[1:4:2], (200, True))

    def test_the_acks_the_generator_itself_dropped_are_not_the_contenders_loss(self):
        def gen(asked, run, lost, drops):
            return dict(row("r", asked, run, round(100.0 * lost / 100000, 4)),
                        pktgen={"sent": 100000, "silently_dropped_expected": 0, "lost": lost, "rx_socket_drops": drops})
        # 0.15 % lost at 200 k, all of it the generator's own receive drops: sustained;
        # at 300 k 0.15 % lost of which 0.02 % the generator's: not
        rows = [gen(100, 1, 0, 0), gen(200, 1, 150, 150), gen(300, 1, 150, 20), gen(400, 1, 0, 0)]
        self.assertEqual(results(rows).max_sustained("r")[1], 200)
        self.assertEqual(report.contender_loss(gen(300, 1, 150, 20)), 0.13)
        # a report without the generator's count: the whole loss
        self.assertEqual(report.contender_loss(row("r", 100, 1, 0.2)), 0.2)

    def test_a_run_the_host_stopped_is_not_judged_and_the_rest_of_its_step_still_counts(self):
        def st(asked, run, loss, steal):
            return dict(row("r", asked, run, loss), steal_ms=steal)
        rows = [st(200, 1, 0.0, [0, 0]), st(200, 2, 1.1, [1140, 170]), st(200, 3, 0.0, [10, 0]),
                st(300, 1, 0.05, [0, 0]), st(300, 2, 0.0, [0, 0]), st(300, 3, 0.0, [20, 0]),
                st(400, 1, 0.3, [20, 400]), st(400, 2, 0.0, [0, 0]), st(400, 3, 0.0, [0, 0])]
        r = results(rows)
        r.j["cores"] = {"appliance": 0, "generator": 1}
        # 1140 ms stolen from core 0 at 200 k: not judged; 400 k lost with the
        # steal on the generator's core only: that ends the range
        self.assertEqual(r.max_sustained("r")[1], 300)
        self.assertEqual(r.host_stopped(rows[1]), 1140)
        self.assertIsNone(r.host_stopped(rows[6]))
        self.assertIsNone(r.host_stopped(rows[0]), "a sustained run is judged, whatever its steal")
        # without the contender's core the rule cannot apply: 200 k lost
        del r.j["cores"]
        self.assertIsNone(r.max_sustained("r"))
        # a step whose every run the host stopped is skipped, not the range's end
        r.j["cores"] = {"appliance": 0}
        r.rows = [st(100, 1, 0.0, [0, 0]), st(200, 1, 2.0, [500, 0]), st(300, 1, 0.0, [0, 0])]
        self.assertEqual(r.max_sustained("r")[1], 300)
        self.assertIn("1 host-stopped run(s) not judged", "".join(markdown_of(r)))

    def test_none_when_the_first_step_lost(self):
        self.assertIsNone(results([row("t", 100, 1, 5.0), row("t", 200, 1, 0.0)]).max_sustained("t"))


def markdown(rows):
    """results.md as report.py writes it for these rows."""
    return markdown_of(results(rows))


def markdown_of(res):
    """results.md as report.py writes it for these results."""
    with tempfile.TemporaryDirectory() as d:
        report.write_md(res, d, "cdf.svg")
        with open(os.path.join(d, "results.md")) as f:
            return f.read()


class StealColumn(unittest.TestCase):
    def test_each_steps_steal_per_core_is_a_column_when_the_sweep_has_it(self):
        md = markdown([dict(row("xdp", 100, 1, 0.0), steal_ms=[30, 40]), dict(row("xdp", 200, 1, 0.0), steal_ms=None)])
        self.assertIn("steal ms (per core)", md)
        self.assertIn("| 30 / 40 |", md)
        self.assertNotIn("steal ms (per core) |", markdown([row("xdp", 100, 1, 0.0)]))


class GeneratorDropsColumn(unittest.TestCase):
    def test_the_generators_own_rx_drops_are_a_column_when_its_reports_have_them(self):
        md = markdown([dict(row("xdp", 100, 1, 0.0), pktgen={"rx_socket_drops": 0}),
                       dict(row("xdp", 200, 1, 0.2), pktgen={"rx_socket_drops": 1366})])
        self.assertIn("generator's rx drops |", md)
        self.assertIn("| 1366 |", md)
        self.assertNotIn("generator's rx drops |", markdown([dict(row("xdp", 100, 1, 0.0), pktgen={"rx_socket_drops": None})]))


def acked(r, pps):
    return dict(r, acked_pps=pps)


class Saturation(unittest.TestCase):
    def test_most_acked_is_each_runs_best_step_and_the_ratios_take_medians(self):
        rows = []
        for run, (x, f, s) in enumerate([(437_000, 448_000, 200_000), (419_000, 450_000, 195_000),
                                         (382_000, 461_000, 189_000)], 1):
            rows += [acked(row("xdp", 300_000, run, 0.0), 299_000), acked(row("xdp", 600_000, run, 5.0), x),
                     acked(row("reflector", 300_000, run, 0.0), 299_000), acked(row("reflector", 600_000, run, 3.0), f),
                     acked(row("socket", 150_000, run, 0.0), 149_000), acked(row("socket", 300_000, run, 9.0), s),
                     acked(row("xdp", 800_000, run, 40.0), x - 50_000)]  # past saturation, fewer
        rows.append(dict(row("xdp", 700_000, 1, None, error="pktgen died"), acked_pps=900_000))
        res = results(rows)
        self.assertEqual(res.most_acked("xdp"), [437_000, 419_000, 382_000], "an errored step does not count")
        md = markdown(rows)
        self.assertIn("| xdp | 437,000, 419,000, 382,000 | 419,000 |", md)
        self.assertIn("XDP ÷ reflector at saturation (medians): **93.1 %**", md)
        self.assertIn("XDP ÷ socket at saturation (medians): **2.15×**", md)
        self.assertIsNone(res.floor_check())
        self.assertNotIn("not a floor", md)

    def test_a_reflector_below_the_xdp_backend_is_called_out(self):
        # issue 27's Intel sweep: reflector 200 k sustained, XDP 300 k
        rows = [row(c, a, run, 0.0) for c, top in (("xdp", 300_000), ("reflector", 200_000))
                for a in (100_000, 200_000, 300_000) if a <= top for run in (1, 2)]
        rows += [row("reflector", 300_000, run, 0.96) for run in (1, 2)]
        res = results(rows)
        self.assertIn("max sustained 200000 < XDP's 300000", res.floor_check())
        self.assertIn("The reflector is not a floor in this sweep", markdown(rows))
        # and the median of most acked alone
        rows = [acked(row("xdp", 400_000, 1, 2.0), 390_000), acked(row("reflector", 400_000, 1, 4.0), 380_000)]
        self.assertIn("median most acked 380,000 < XDP's 390,000/s", results(rows).floor_check())

    def test_no_warning_without_a_reflector_or_for_one_sustained_to_its_top_rate(self):
        rows = [row("xdp", a, 1, 0.0) for a in (100_000, 300_000)] + [row("socket", 100_000, 1, 0.0)]
        self.assertIsNone(results(rows).floor_check())
        self.assertNotIn("not a floor", markdown(rows))
        # its own rates stop at 200 k, all sustained: its limit is higher
        rows += [row("reflector", a, 1, 0.0) for a in (100_000, 200_000)]
        self.assertIsNone(results(rows).floor_check())


if __name__ == "__main__":
    unittest.main()
