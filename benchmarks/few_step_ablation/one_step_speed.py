"""Images per second of one-step students beside their teacher's default sampler, in one process, rounds interleaved.

Issue 24 asks one step to draw at least 30 times the images per second of the default 50-step sampler; a student
grown by `distill --grow-student` costs more per evaluation than the teacher's network. This draws --n images
from each model in turn (the teacher: the default sampler, 50 steps; each student: its own sampler, one step),
unconditionally, in batches of --batch-size, --rounds times, and prints a JSON line per model and round: its
images per second and the ratio to the teacher's in the same round. Pin it to one core with one thread:

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/few_step_ablation/one_step_speed.py \\
        --teacher runs/s17-uncond-s0/checkpoints/last.pt --student default=runs/.../last.pt --student grown=...
"""

import argparse
import json
import time

import torch

from cleardiffusion.checkpoint import load_for_sampling
from cleardiffusion.experiments.report import cpu_model
from cleardiffusion.generate import generate_images
from cleardiffusion.recipe import SamplingRecipe


def images_per_second(checkpoint: str, steps: int | None, n: int, batch_size: int) -> float:
    model, path, meta = load_for_sampling(checkpoint)
    recipe = SamplingRecipe(steps=steps)  # the model's own sampler: dpm++2m-sde for a DDPM, consistency otherwise
    start = time.perf_counter()
    for _ in generate_images(model, path, n=n, shape=tuple(meta["image_shape"]), recipe=recipe, seed=0,
                             batch_size=batch_size):  # fmt: skip
        pass
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", required=True, help="a DDPM checkpoint: its default sampler at --teacher-steps")
    p.add_argument("--teacher-steps", type=int, default=50)
    p.add_argument("--student", action="append", default=[], metavar="NAME=CKPT", help="a few-step checkpoint")
    p.add_argument("--n", type=int, default=500, help="images per model and round (the teacher: a fifth)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    students = dict(s.split("=", 1) for s in args.student)
    for r in range(args.rounds):
        teacher = images_per_second(args.teacher, args.teacher_steps, max(args.n // 5, 1), args.batch_size)
        rows = [{"model": "teacher", "checkpoint": args.teacher, "steps": args.teacher_steps,
                 "images_per_sec": teacher}]  # fmt: skip
        for name, ckpt in students.items():
            speed = images_per_second(ckpt, 1, args.n, args.batch_size)
            rows.append({"model": name, "checkpoint": ckpt, "steps": 1, "images_per_sec": speed})
        for row in rows:
            print(json.dumps({**row, "round": r, "images_per_sec": round(row["images_per_sec"], 1),
                              "over_teacher": round(row["images_per_sec"] / teacher, 1),
                              "cpu": cpu_model(), "threads": 1}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
