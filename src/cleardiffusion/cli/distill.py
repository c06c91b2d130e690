"""`cleardiffusion distill`: a DDPM checkpoint -> a consistency model that samples in 1-4 steps (consistency.py).

The run is a training run (train.py's loop, checkpoints, --resume, Ctrl-C) of `TrainConfig(objective=
"consistency", teacher=CKPT)`: the network, data and schedule are the teacher's, the flags below change the rest.
"""

import argparse
import dataclasses

# the fields a distillation run takes from its command line; everything else comes from the teacher's run
FLAGS = ("teacher", "distill_method", "consistency_delta", "consistency_distance", "teacher_guidance", "trajectories",
         "teacher_steps", "student", "chain", "dmd_chain", "dmd_fake_steps", "dmd_fake_lr", "dmd_gan", "dmd_t_max",
         "autoguide", "data_dir", "steps", "time_budget", "batch_size", "lr", "warmup", "ema_decay", "ema_warmup",
         "seed", "device", "precision", "out", "resume", "log_every", "sample_every", "checkpoint_every",
         "keep_checkpoints", "eval_every", "eval_n", "progress", "autoguide_from", "grow_student",
         "student_codes")  # fmt: skip
# where distillation's defaults differ from training's (docs/few_step.md: measured on MNIST)
DEFAULTS = {"lr": 1e-4, "warmup": 0, "sample_every": 1000}
# dmd moves an already distilled student: a smaller step, and an EMA over the whole run from its first step (its
# samples swing from one checkpoint to the next; docs/few_step.md)
DMD_DEFAULTS = {"lr": 2e-5, "ema_decay": 0.995, "ema_warmup": 0}
# ... from an unconditional teacher, batches of 16 (three times the steps of 64 in the same minutes) with the EMA's
# horizon, 1 / (1 - decay) = 500 steps, lengthened to match: every FID target on six MNIST draws where the batch
# of 64 met them on three; on one conditional draw the same at one step and worse at two and four (docs/few_step.md);
# and the two scores compared at noise levels up to T / 2 instead of 0.98 T: a lower one-step FID on six of six
# MNIST draws at about the same two- and four-step FIDs (docs/few_step.md, "dmd's highest noise level")
DMD_UNCONDITIONAL = {"batch_size": 16, "ema_decay": 0.998, "dmd_t_max": 0.5}
# the trajectory method from an unconditional U-Net teacher's own weights grows the student by four blocks at its
# lowest resolution: after dmd (which keeps them), more readable one-step digits on six MNIST draws at about the
# same one-step FID (docs/few_step.md, "A deeper student"); and gives it a code of 20 classes: after dmd, more
# readable one-step digits again on six draws (docs/few_step.md, "A code inside the one-step map")
TRAJECTORY_UNCONDITIONAL = {"grow_student": 4, "student_codes": 20}
# what a new run does not inherit from the teacher's run (the teacher's own output, length and state)
NOT_INHERITED = ("out", "resume", "steps", "time_budget", "eval_every", "eval_n", "classifier", "tensorboard",
                 "compile", "keep_checkpoints", "sample_every", "checkpoint_every", "log_every", "lr",
                 "warmup")  # fmt: skip

EPILOG = """\
examples:
  cleardiffusion distill --teacher runs/mnist/checkpoints/last.pt --time-budget 15 --teacher-guidance 3 \\
      --out runs/mnist-trajectory                  # trajectory distillation, the default method
  cleardiffusion sample --checkpoint runs/mnist-trajectory/checkpoints/last.pt --steps 1 --n 100 \\
      --class-label none --out one_step.png        # one network evaluation
  cleardiffusion sample --checkpoint runs/mnist-trajectory/checkpoints/last.pt --steps 2 --n 100 \\
      --out two_steps.png --trajectory traj.png    # a class per row, guided by the weights (w = 3)
  cleardiffusion distill --teacher runs/mnist/checkpoints/last.pt --distill-method cd \\
      --teacher-guidance 3 --time-budget 15 --out runs/mnist-cd    # consistency distillation
  cleardiffusion distill --teacher runs/mnist/checkpoints/last.pt --distill-method ect --steps 2000 \\
      --out runs/mnist-ect                         # consistency tuning: no teacher evaluations
  cleardiffusion distill --teacher runs/mnist/checkpoints/last.pt --time-budget 10 --teacher-guidance 3 \\
      --out runs/mnist-traj10
  cleardiffusion distill --teacher runs/mnist/checkpoints/last.pt --distill-method dmd --teacher-guidance 1.5 \\
      --student runs/mnist-traj10/checkpoints/last.pt --time-budget 5 --out runs/mnist-dmd
                                                   # distribution matching of the trajectory student
  cleardiffusion distill --teacher runs/uncond/checkpoints/last.pt --distill-method dmd --teacher-guidance 2.5 \
      --autoguide runs/uncond/checkpoints/step_0000500.pt --student runs/uncond-traj/checkpoints/last.pt \
      --lr 6e-5 --dmd-fake-lr 5e-4 --time-budget 4.8 --chain runs/uncond-chain/checkpoints/last.pt \
      --out runs/uncond-pair                       # a one-step map beside a dmd chain of the same student: two
                                                   # networks (docs/few_step.md, "Two networks")

The teacher must be a DDPM checkpoint (`cleardiffusion train`, --objective ddpm: the default recipe's). The
student starts from the teacher's EMA weights (or --student's); its checkpoints record objective consistency, so
`sample` uses multistep consistency sampling (1 to 8 steps, 2 by default) and refuses the diffusion samplers.
From an unconditional U-Net teacher the trajectory method grows the student by four blocks (--grow-student 4;
--grow-student 0: the teacher's network as it is) and gives it a code of 20 classes, picked inside its forward
(--student-codes 20; 0: none); dmd keeps a --student's network, grown and coded or not.
dmd (defaults: --lr 2e-5, --ema-decay 0.995 --ema-warmup 0, from an unconditional teacher --batch-size 16
--ema-decay 0.998 --dmd-t-max 0.5, the one-step map with DMD2's GAN term, which needs a U-Net teacher) trains a second,
fake-score network and a discriminator beside the student, one process only, and does not resume; on a
conditional teacher, guide its target less than the student's (1.5 against 3).
--chain CKPT: this run's checkpoints also carry CKPT's network, which `sample` uses at 2 or more steps, this
run's at one step only.
Ctrl-C writes a checkpoint; rerun with --resume to continue (dmd: start a new run with --student). What was
tried and measured: docs/few_step.md.
"""


def register(subparsers) -> None:
    from ..options import add_arguments
    from ..train_config import TrainConfig

    parser = subparsers.add_parser(
        "distill",
        help="turn a DDPM checkpoint into a 1-4 step consistency model (trajectory distillation, cd, ect or dmd)",
        description="Trajectory distillation (the default; Luhman & Luhman 2021 at every solver point), consistency "
        "distillation\n(Song et al. 2023) or consistency tuning (ECT, Geng et al. 2024) of a trained DDPM checkpoint "
        "into a\nmodel that samples in 1 to 4 network evaluations; distribution matching (DMD, Yin et al. 2024) of "
        "such a\nmodel towards the teacher's samples.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser, TrainConfig, only=FLAGS, defaults=DEFAULTS)
    parser.set_defaults(func=run)


def config_from_teacher(teacher_config: dict, given: dict, student_blocks: int = 0, student_codes: int = 0):
    """The TrainConfig of a distillation run: the teacher's run, less what it does not pass on, then DEFAULTS,
    then the flags given; its network has the --student's extra middle blocks (`student_blocks`, those grown by
    --grow-student before) and --grow-student more, and the --student's code (`student_codes` classes), if any."""
    from ..models import preset_kind
    from ..train_config import TrainConfig, config_as_of_today

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    inherited = {k: v for k, v in config_as_of_today(teacher_config).items()
                 if k in names and k not in NOT_INHERITED}  # fmt: skip
    if isinstance(inherited.get("adam_betas"), list):
        inherited["adam_betas"] = tuple(inherited["adam_betas"])
    if student_blocks:
        inherited["model_options"] = {**inherited.get("model_options", {}), "extra_middle_blocks": student_blocks}
    if student_codes:
        inherited["model_options"] = {**inherited.get("model_options", {}), "code_classes": student_codes}
    method_defaults, unconditional = {}, not teacher_config.get("conditional")
    if given.get("distill_method") == "dmd":
        method_defaults = {**DMD_DEFAULTS, **(DMD_UNCONDITIONAL if unconditional else {})}
    elif given.get("distill_method", "trajectory") == "trajectory" and unconditional and not given.get("student"):
        method_defaults = TRAJECTORY_UNCONDITIONAL if preset_kind(inherited["model"]) == "unet" else {}
    values = {**inherited, **DEFAULTS, **method_defaults, **given, "objective": "consistency"}
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_for_sampling
    from ..consistency import check_teacher, gan_features
    from ..errors import UsageError
    from ..options import given_values
    from ..train import UNLIMITED_STEPS, TrainConfig, train, validate
    from ..train_run import load_chain, load_student

    given = given_values(args, TrainConfig)
    if "teacher" not in given:
        raise UsageError("say which model to distill: --teacher CKPT (a `cleardiffusion train` checkpoint)")
    if "steps" not in given and "time_budget" not in given:
        raise UsageError("say how long to distill: --steps N, --time-budget MINUTES, or both")
    given.setdefault("steps", UNLIMITED_STEPS)
    teacher, _, meta = load_for_sampling(given["teacher"])  # a corrupt or unusable teacher stops here, nothing written
    check_teacher(meta, given["teacher"])
    config = config_from_teacher(meta["config"], given)
    validate(config, given={*given, "objective", "teacher"})
    if config.distill_method == "dmd" and config.dmd_gan > 0:  # a backbone the discriminator cannot read
        gan_features(getattr(teacher, "net", teacher))
    if config.student:  # so does a --student that is not a model distilled from it; a grown one passes its blocks
        student = load_student(config.student, teacher)  # (and a coded one its code) on
        config = config_from_teacher(meta["config"], given, getattr(student.config, "extra_middle_blocks", 0),
                                     getattr(student.config, "code_classes", 0))  # fmt: skip
    if config.chain:  # and a --chain that is not one network distilled from it
        load_chain(config.chain, getattr(teacher, "net", teacher), {"name": config.schedule, "T": config.timesteps})
    return train(config)["exit_code"]
