"""Progress bars in a log: a long run writes a line now and then, not one per evaluation."""

from nteach.inr import Budget, Fit
from nteach.inr.models import make_model
from nteach.progress import progress_bar, show_status
from nteach.teaching import Teacher


def drawn_lines(err: str) -> list[str]:
    """The bar's redraws as written (each starts with a carriage return), empty ones dropped."""
    return [line for line in err.replace("\n", "\r").split("\r") if line.strip()]


def test_status_updates_do_not_redraw_the_bar_in_a_log(capsys):
    with progress_bar(total=100, desc="work") as bar:  # stderr is captured: not a terminal
        for step in range(100):
            bar.update(1)
            show_status(bar, f"step {step}")
    lines = drawn_lines(capsys.readouterr().err)
    assert 1 <= len(lines) <= 3 and "100/100" in lines[-1]  # the first draw, then the closing one


def test_a_fits_fifty_evaluations_write_a_few_lines_to_a_log(tiny_signal, capsys):
    model = make_model("siren", 2, 3, width=8, depth=1)
    fit = Fit(tiny_signal, model, Teacher("uniform", len(tiny_signal)), Budget(steps=100), eval_every=2)
    fit.run(show_progress=True)
    lines = drawn_lines(capsys.readouterr().err)
    assert len(fit.history) == 51 and 1 <= len(lines) <= 3
    assert "step 100" in lines[-1]  # the last evaluation's status is on the closing line


def test_a_timed_fit_s_bar_ends_at_its_total(tiny_signal, capsys, recwarn):
    """A time budget's last step overshoots it; the bar stops at the total, without tqdm's warning."""
    model = make_model("siren", 2, 3, width=8, depth=1)
    fit = Fit(tiny_signal, model, Teacher("uniform", len(tiny_signal)), Budget(seconds=0.05), eval_every=0.01)
    fit.run(show_progress=True)
    assert fit.clock.seconds > 0.05  # the overshoot the bar must not show
    assert not [w for w in recwarn if "clamping frac" in str(w.message)]
    closing = drawn_lines(capsys.readouterr().err)[-1]
    assert "100%" in closing and "-00:00" not in closing
