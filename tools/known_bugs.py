"""Issue 28's bugs put back one at a time: each must make the test named beside it fail.

    python tools/known_bugs.py     # prints ok / MISS per bug, writes benchmarks/results/mutation_cpu/known_bugs.json

Each bug is one line of src/ replaced in a scratch copy; the named tests then run against that copy. A line that
is no longer in the code (after a rewrite) is reported, not skipped silently: update KNOWN_BUGS.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mutation import OUT, PACKAGE, ROOT

# Issue 28's bugs, put back one at a time: (name, file, line as written, the bug, the test that must fail)
OPTIONS = "test_plumbing.py::test_generate_passes_every_option_to_the_sampler"
SEEDS = "test_plumbing.py::test_per_sample_seeds_give_distinct_samples_whatever_the_batch"
EMA = "test_plumbing.py::test_ema_follows_its_warm_started_recurrence"
KNOWN_BUGS = [
    ("generate ignores the guidance scale", "generate.py", "guided_model(network, y, recipe.guidance)",
     "guided_model(network, y, 1.0 if y is not None else recipe.guidance)", OPTIONS),
    ("generate ignores eta", "recipe.py", '"ddim": {"eta": self.eta}', '"ddim": {}', OPTIONS),
    ("generate ignores the variance", "recipe.py", '"ddpm": {"variance": self.variance}', '"ddpm": {}', OPTIONS),
    ("generate ignores the solver type", "recipe.py", '{"solver_type": self.solver_type} if self.sampler in',
     "{} if self.sampler in", OPTIONS),
    ("generate ignores clip_x0", "generate.py", "clip_x0=recipe.clip_x0,", "", OPTIONS),
    ("per-sample seeds ignore the index", "generate.py", "sample_generator(seed, i) for i in range(start, stop)",
     "sample_generator(seed, 0) for i in range(start, stop)", SEEDS),
    ("EMA never updated", "train.py", "        ema_update_(ema_params, params, decay, foreach=options.foreach_ema)",
     "        pass", EMA),
    ("EMA without its warm-up", "train.py", "decay=ema_decay(step, config.ema_decay, config.ema_warmup)",
     "decay=config.ema_decay", EMA),
    ("EMA not restored on resume", "train_run.py", '    run.ema.load_state_dict(saved["ema"])', "    pass",
     "test_plumbing.py::test_resume_is_bitwise_on_model_ema_and_optimizer"),
    ("no learning-rate warm-up", "train.py", "return lr * min(1.0, step / warmup) if warmup else lr", "return lr",
     "test_plumbing.py::test_learning_rate_warms_up_linearly_then_stays"),
    ("no gradient clipping", "train.py", "    if grad_clip > 0:", "    if False:",
     "test_plumbing.py::test_train_step_clips_the_gradient_norm"),
    ("t drawn from 0..T-2", "schedule.py", "torch.randint(0, self.T, (n,)", "torch.randint(0, self.T - 1, (n,)",
     "test_plumbing.py::test_timesteps_cover_0_to_T_minus_1_uniformly"),
    ("DDIM's clip_x0 does not re-derive eps", "denoiser.py", "            eps = eps_from_x0(x_t, x0, a, s)\n", "",
     "test_samplers.py::test_clipped_ddim_by_hand"),
    ("Heun's clip_x0 does not re-derive eps", "denoiser.py", "            eps = eps_from_x0(x_t, x0, a, s)\n", "",
     "test_samplers.py::test_clipped_heun_by_hand"),
    ("the flow path's clip_x0 does not re-derive v", "denoiser.py", "        v = (x_t - x0) / t\n", "",
     "test_flow.py::test_clipped_flow_samplers_by_hand"),
    ("noise on DDPM's last step", "samplers.py", "        if s != path.clean:  # no noise is added on the last step",
     "        if True:", "test_samplers.py::test_output_moments_are_exactly_the_hand_recursion"),
    ("DDPM returns x_T unchanged", "samplers.py", "sigma2**0.5 * randn_like(x, generator)\n    return x\n",
     "sigma2**0.5 * randn_like(x, generator)\n    return x_T\n",
     "test_toy.py::test_seed_configuration_does_not_reconstruct"),
    ("v = sqrt(ab) eps + sqrt(1 - ab) x_0", "schedule.py", "return a * eps - s * x0", "return a * eps + s * x0",
     "test_objective.py::test_v_target_is_the_angular_velocity"),
    ("KID with a quadratic kernel", "evaluate.py", "return k.mul_(k.square())", "return k.mul_(k)",
     "test_evaluate.py::test_kid_matches_a_term_by_term_implementation"),
    ("inception score as the mean of exp(KL)", "evaluate.py", "np.exp(kl.mean())", "np.exp(kl).mean()",
     "test_evaluate.py::test_inception_score_matches_a_loop_over_the_definition"),
    ("precision/recall with the k-th instead of the (k+1)-th distance", "evaluate.py", ".values[:, k]",
     ".values[:, k - 1]", "test_evaluate.py::test_precision_recall_match_a_loop_over_the_definition"),
]  # fmt: skip


def check_known_bugs(work: Path) -> None:
    """Put each of KNOWN_BUGS into a scratch copy of src/ and check that its test fails (and passes without it)."""
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, file, line, bug, tests in KNOWN_BUGS:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        path = work / PACKAGE / file
        source = path.read_text()
        if source.count(line) != 1:
            rows.append({"bug": name, "file": file, "tests": tests, "result": "line not found (the code changed)"})
            print(f"?    {name}: the line is not in {file} once; update KNOWN_BUGS")
            continue
        path.write_text(source.replace(line, bug))
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
                   *(f"tests/{t}" for t in tests.split())]  # fmt: skip
        run = subprocess.run(command, cwd=ROOT, env={**env, "PYTHONPATH": str(work / "src")}, capture_output=True)
        caught = run.returncode == 1  # 1: a test failed (2-5: errors, interruptions, nothing collected)
        rows.append({"bug": name, "file": file, "tests": tests, "result": "caught" if caught else "MISSED"})
        print(f"{'ok  ' if caught else 'MISS'} {name}: {tests}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "known_bugs.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    check_known_bugs(Path(tempfile.gettempdir()) / "cleardiffusion-known-bug")
