import json
import statistics

import pytest

from nteach.bench.probe import robust_seconds
from nteach.bench.results import merge
from nteach.bench.suite import load_suite, rotated, run_suite, suite_path
from nteach.cli import main
from nteach.errors import UserError

TINY = """
name = "tiny"
teachers = ["full", "uniform", "sweep", "uniform_twin"]
controls = ["uniform_twin"]
seeds = [0, 1]
ratio = 0.25
steps = 30
width = 16
depth = 2
size = 16
eval_every = 5
lr = 0.003
lr_schedule = "cosine"

[[case]]
name = "camera-siren"
image = "camera"
regime = "capacity-limited"

[variants.uniform_twin]
teacher = "uniform"
"""


def run_tiny(tmp_path, suite=TINY, *extra):
    (tmp_path / "tiny.toml").write_text(suite)
    out = tmp_path / "out"
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--out", str(out), "--quiet",
                 *extra]) == 0
    return json.loads((out / "results.json").read_text()), out


def test_tiny_suite_writes_a_results_file_with_work_and_robust_time(tmp_path, capsys):
    results, out = run_tiny(tmp_path)
    assert results["format"] == 2 and results["seeds"] == [0, 1]
    assert len(results["provenance"]["suite_hash"]) == 12 and results["provenance"]["machine"]["cores"] >= 1
    case = results["cases"]["camera-siren"]
    assert case["metric"] == "psnr" and case["points"] == 256 and case["controls"] == ["uniform_twin"]
    costs = case["costs"]
    assert set(costs["step"]) == {"full", "uniform", "sweep", "uniform_twin"} and costs["trained"] >= 0
    for teacher, runs in case["runs"].items():
        assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == 30 for r in runs)
        last = runs[0]["history"][-1]
        batch = 256 if teacher == "full" else 64
        assert last["work"] == {"steps": 30, "trained": 30 * batch, "forwarded": 0, "ntk": 0}
        assert last["robust_seconds"] == pytest.approx(robust_seconds(last["work"], costs, teacher))
    markdown = (out / "results.md").read_text()
    assert "### camera-siren" in markdown and "| uniform_twin |" in markdown and "Noise control" in markdown
    assert (out / "camera-siren.png").stat().st_size > 1000
    assert "results, tables and plots" in capsys.readouterr().out


def test_twins_train_identically_so_only_the_clock_differs(tmp_path):
    results, _ = run_tiny(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]"))
    runs = results["cases"]["camera-siren"]["runs"]
    same = [(r["step"], r["psnr"], r["work"]) for r in runs["uniform"][0]["history"]]
    assert same == [(r["step"], r["psnr"], r["work"]) for r in runs["uniform_twin"][0]["history"]]


def test_a_part_of_the_suite(tmp_path, capsys):
    results, _ = run_tiny(tmp_path, TINY, "--seeds", "3", "--teachers", "uniform,sweep")
    assert results["seeds"] == [3] and set(results["cases"]["camera-siren"]["runs"]) == {"uniform", "sweep"}
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--cases", "nope"]) == 2
    assert "no case 'nope'" in capsys.readouterr().err
    assert main(["bench", "inr", "--suite", str(tmp_path / "tiny.toml"), "--seeds", "0,x"]) == 2


def test_a_variant_may_set_the_ratio_and_the_results_say_what_each_teacher_ran_with(tmp_path):
    suite = TINY.replace('teachers = ["full", "uniform", "sweep", "uniform_twin"]',
                         'teachers = ["uniform", "uniform_half", "paced_sweep", "plain"]'
                         ).replace('controls = ["uniform_twin"]', "")
    suite += '\n[variants.uniform_half]\nteacher = "uniform"\nratio = 0.5\n'
    suite += '\n[variants.plain]\nteacher = "paced_sweep"\ntemperature = 0.0\npasses = 2\n'
    results, out = run_tiny(tmp_path, suite, "--seeds", "0")
    case = results["cases"]["camera-siren"]
    runs = case["runs"]
    # 16 x 16 = 256 pixels: the case's ratio 0.25 trains on 64 a step, the variant's 0.5 on 128
    assert {r["history"][-1]["selected"] for r in runs["uniform"]} == {64}
    assert {r["history"][-1]["selected"] for r in runs["uniform_half"]} == {128}
    # paced_sweep's INR settings (4 passes, jitter 0.5) are recorded, and a variant's own win over them
    assert case["setups"] == {"uniform": {"teacher": "uniform"},
                              "uniform_half": {"teacher": "uniform", "ratio": 0.5},
                              "paced_sweep": {"teacher": "paced_sweep", "passes": 4, "jitter": 0.5},
                              "plain": {"teacher": "paced_sweep", "passes": 2, "jitter": 0.5,
                                        "temperature": 0.0}}
    assert ("Teachers' settings: `uniform_half` is uniform (ratio 0.5); `paced_sweep` is paced_sweep "
            "(passes 4, jitter 0.5); `plain` is paced_sweep (passes 2, jitter 0.5, temperature 0).") in (
        out / "results.md").read_text()
    other_part = {**results, "cases": {"camera-siren": {**case, "runs": {},
                                                         "setups": {"sweep": {"teacher": "sweep"}}}}}
    assert set(merge([results, other_part])["cases"]["camera-siren"]["setups"]) == {
        "uniform", "uniform_half", "paced_sweep", "plain", "sweep"}


def test_a_variant_may_run_a_share_of_the_budget_with_its_schedule_over_that_share(tmp_path):
    suite = TINY.replace('teachers = ["full", "uniform", "sweep", "uniform_twin"]',
                         'teachers = ["sweep", "sweep_short"]').replace('controls = ["uniform_twin"]', "")
    suite += '\n[variants.sweep_short]\nteacher = "sweep"\nbudget = 0.6\n'
    results, _ = run_tiny(tmp_path, suite, "--seeds", "0")
    case = results["cases"]["camera-siren"]
    assert [r["steps"] for r in case["runs"]["sweep_short"]] == [18]  # 0.6 of the case's 30 steps
    assert case["setups"]["sweep_short"] == {"teacher": "sweep", "budget": 0.6}
    # the cosine decays over the variant's own 18 steps: its first 10 steps follow another rate than the
    # full run's, so the two part ways (a run cut at step 18 of 30 would not)
    short, full = (case["runs"][t][0]["history"] for t in ("sweep_short", "sweep"))
    assert short[0]["psnr"] == full[0]["psnr"] and short[2]["psnr"] != full[2]["psnr"]
    (tmp_path / "bad.toml").write_text(suite.replace("budget = 0.6", "budget = 0"))
    with pytest.raises(UserError, match="budget share > 0"):
        load_suite(tmp_path / "bad.toml")


def test_each_seed_starts_one_teacher_further_on():
    assert [rotated(["a", "b", "c"], k) for k in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_robust_seconds_by_hand():
    costs = {"step": {"uniform": 1e-3, "nint": 2e-3}, "trained": 1e-6, "forwarded": 2e-7, "ntk": 1e-6}
    work = {"steps": 100, "trained": 100 * 800, "forwarded": 100 * 4000, "ntk": 4000}
    assert robust_seconds(work, costs, "nint") == pytest.approx(0.2 + 0.08 + 0.08 + 0.004)
    assert robust_seconds(work, costs, "uniform") == pytest.approx(0.1 + 0.08 + 0.08 + 0.004)


def test_a_step_whose_cost_grows_faster_than_its_batch_is_priced_as_measured(tiny_signal, monkeypatch):
    """Probed times as a 3-D hash grid's: 20% of the pool 46 ms a step, all of it 303 ms. The line
    through them meets an empty batch below 0 ms; with that intercept a uniform step is priced at the
    46 ms it measured (a loop clamped at 0 priced it at 0.2 * 303 ms and more)."""
    from nteach.bench import probe
    from nteach.inr import Budget, Fit, Siren
    from nteach.teaching import Teacher

    def build(teacher):
        return Fit(tiny_signal, Siren(2, 3, width=8, depth=1), Teacher(teacher, len(tiny_signal), ratio=0.2),
                   Budget(steps=100))

    made_up = {"train_small": 0.046, "train_all": 0.303, "forward_all": 0.01, "ntk_all": 0.05,
               "teacher:uniform": 0.0, "steps:uniform": probe.TEACHER_STEPS * 0.046}

    def alternate(actions, device, repetitions):  # runs every action, reports the times above
        for action in actions.values():
            for _ in range(probe.WARMUP + repetitions):
                action()
        return {name: [made_up[name]] * repetitions for name in actions}, statistics.median

    monkeypatch.setattr(probe, "alternate", alternate)
    costs = probe.measure_costs(build, ["uniform"], 0.2, repetitions=3)
    small = round(0.2 * len(tiny_signal))
    assert costs["trained"] == pytest.approx((0.303 - 0.046) / (len(tiny_signal) - small))
    assert costs["loop"] == pytest.approx(0.046 - small * costs["trained"]) and costs["loop"] < 0
    work = {"steps": 10, "trained": 10 * small, "forwarded": 0, "ntk": 0}
    assert robust_seconds(work, costs, "uniform") == pytest.approx(10 * 0.046)
    every = {"steps": 10, "trained": 10 * len(tiny_signal), "forwarded": 0, "ntk": 0}
    assert robust_seconds(every, costs, "uniform") == pytest.approx(10 * 0.303)


@pytest.mark.parametrize("change,message", [
    (('"sweep",', '"magic",'), "unknown teacher 'magic'"),
    (('image = "camera"', 'image = "camera"\nmodel = "kan"'), "unknown model 'kan'"),
    (('image = "camera"', 'image = "missing.png"'), "no such image"),
    (('image = "camera"', 'image = "camera"\ncolour = 3'), "unknown setting 'colour'"),
    (('image = "camera"', 'image = "camera"\nlr_schedule = "step"'), "unknown lr schedule 'step'"),
    (('controls = ["uniform_twin"]', 'controls = ["twin"]'), "controls names 'twin', which is not one"),
    (('controls = ["uniform_twin"]', 'reference = "nint"'), "reference names 'nint', which is not one"),
    (('"sweep",', '"sweep", "hot",'), "has no option 'heat'"),
    (("seeds = [0, 1]", 'seeds = [0, 1]\ncases_from = "quick"'), "give [[case]] tables or cases_from"),
    (('teacher = "uniform"', 'teacher = "uniform"\nsize = 64'),
     "variant 'uniform_twin' sets 'size', which only a case can set"),
])
def test_bad_suites_fail_before_running(tmp_path, capsys, change, message):
    suite = TINY.replace(*change)
    if "heat" in message:
        suite += '\n[variants.hot]\nteacher = "paced_sweep"\nheat = 2\n'
    (tmp_path / "bad.toml").write_text(suite)
    assert main(["bench", "inr", "--suite", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bundled_suites_parse():
    for name in ("quick", "full", "dev", "heldout", "ablation", "noise", "ratios", "shapes",
                 "budgets"):
        suite = load_suite(suite_path(name))
        assert suite["cases"] and all(c["teachers"] for c in suite["cases"])
    heldout, dev = load_suite(suite_path("heldout")), load_suite(suite_path("dev"))
    for suite in (heldout, dev):
        assert {"uniform", "sweep", "paced_sweep", "nint"} <= set(suite["cases"][0]["teachers"])
        assert suite["controls"] == ["uniform_twin"] and suite["reference"] == "uniform"
        regimes = {c["regime"] for c in suite["cases"]}
        assert regimes >= {"capacity-limited", "high-fidelity", "audio", "shape"}
        assert {c["config"].signal for c in suite["cases"]} >= {None, "audio", "sdf", "occupancy"}
        assert len({c["config"].model for c in suite["cases"]}) >= 2
    assert len(heldout["cases"]) >= 6

    def inputs(suite):
        return {c["config"].image for c in suite["cases"]}
    assert not inputs(heldout) & inputs(dev)  # held-out signals never tuned on
    noise = load_suite(suite_path("noise"))  # the control: uniform twice, under two names
    assert noise["variants"] == {"uniform_twin": {"teacher": "uniform"}}
    assert noise["controls"] == ["uniform_twin"]
    ratios = load_suite(suite_path("ratios"))  # the batch-size sweep: variants that set the ratio
    assert sorted(v["ratio"] for v in ratios["variants"].values()) == [0.05] * 4 + [0.1] * 4 + [0.4]


def test_missing_suite_file(tmp_path):
    with pytest.raises(UserError, match="no suite file"):
        run_suite(tmp_path / "none.toml", tmp_path / "out")


def test_a_teacher_that_wants_input_gradients_is_priced_at_its_measured_steps(tiny_signal, monkeypatch):
    """Soft Mining's backward pass reaches the inputs, work no counter sees: its steps are priced at what
    the probe timed them to cost; uniform's at the shared loop, as before."""
    from nteach.bench import probe
    from nteach.inr import Budget, Fit, Siren
    from nteach.teaching import Teacher

    def build(teacher):
        return Fit(tiny_signal, Siren(2, 3, width=8, depth=1), Teacher(teacher, len(tiny_signal), ratio=0.2),
                   Budget(steps=100))

    made_up = {"train_small": 0.04, "train_all": 0.2, "forward_all": 0.01, "ntk_all": 0.05,
               "teacher:uniform": 0.0, "teacher:soft_mining": 0.0,
               "steps:uniform": probe.TEACHER_STEPS * 0.05, "steps:soft_mining": probe.TEACHER_STEPS * 0.08}

    def alternate(actions, device, repetitions):
        for action in actions.values():
            for _ in range(probe.WARMUP + repetitions):
                action()
        return {name: [made_up[name]] * repetitions for name in actions}, statistics.median

    monkeypatch.setattr(probe, "alternate", alternate)
    costs = probe.measure_costs(build, ["uniform", "soft_mining"], 0.2, repetitions=3)
    small = round(0.2 * len(tiny_signal))
    assert costs["own_steps"] == ["soft_mining"]
    assert costs["loop"] == pytest.approx(0.05 - small * costs["trained"])  # uniform alone: not soft_mining
    work = {"steps": 10, "trained": 10 * small, "forwarded": 0, "ntk": 0}
    assert robust_seconds(work, costs, "uniform") == pytest.approx(10 * 0.05)
    assert robust_seconds(work, costs, "soft_mining") == pytest.approx(10 * 0.08)
    # a results file written before: no own_steps, its old prices; read again under today's model
    old = {"teacher": costs["teacher"], "measured_step": costs["measured_step"], "loop": costs["loop"],
           "trained": costs["trained"], "forwarded": 0.0, "ntk": 0.0,
           "step": {t: costs["loop"] for t in ("uniform", "soft_mining")}}
    runs = {t: [{"history": [{"work": work, "robust_seconds": 0.0}]}] for t in ("uniform", "soft_mining")}
    probe.price_inr_results({"cases": {"c": {"costs": old, "runs": runs}}})
    assert old["own_steps"] == ["soft_mining"]
    assert runs["soft_mining"][0]["history"][0]["robust_seconds"] == pytest.approx(10 * 0.08)
    assert runs["uniform"][0]["history"][0]["robust_seconds"] == pytest.approx(10 * 0.05)
