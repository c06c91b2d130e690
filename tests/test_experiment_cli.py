"""`cleardiffusion experiment` without --size: never the GPU-sized run on a machine without a GPU, and it says so."""

import torch

from cleardiffusion.cli import main


def test_no_size_on_a_cpu_is_the_cpu_size_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # stops at the data check (no mnist in the empty folder), after the size is chosen and before any work
    assert main(["experiment", "ddpm-steps", "--out", str(tmp_path / "x"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--size not given: cpu" in err and "--size quick" in err
    assert not (tmp_path / "x" / "results.json").exists()
