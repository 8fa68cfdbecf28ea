"""Importing nteach and calling it leaves the caller's matplotlib backend, torch RNG and threads alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from nteach.inr.experiment import FitConfig, run_fit


def test_import_and_plots_keep_the_matplotlib_backend():
    script = textwrap.dedent("""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        import nteach, nteach.viz, nteach.bench.report
        from nteach.viz import quality_vs_time
        figure = quality_vs_time({"a": [{"seconds": 0, "psnr": 1}, {"seconds": 1, "psnr": 2}]})
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert plt.get_fignums() == [], plt.get_fignums()  # nothing left open in pyplot
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_fit_keeps_the_callers_random_state_and_threads(tmp_path):
    torch.manual_seed(1234)
    threads = torch.get_num_threads()
    before = torch.get_rng_state()
    config = FitConfig(image="camera", steps=3, size=16, width=8, depth=2, out=str(tmp_path / "run"))
    run_fit(config, show_progress=False)
    assert torch.equal(torch.get_rng_state(), before) and torch.get_num_threads() == threads
