"""dmd's student steps in the same minutes with the discriminator's input through the fake network's encoder and
middle (the library) and through its whole forward (dmd_full_forward.py, the library before session 25): the same
student, teacher, autoguide model and seed, the two alternating on one process's core, ROUNDS times each. Prints a
JSON line per run: its variant, round and steps. The step counts are what the comparison needs; the runs'
checkpoints go to a temporary folder.

    taskset -c 0 python benchmarks/few_step_ablation/dmd_encode_speed.py --teacher T.pt --student S.pt \
        --autoguide BAD.pt --minutes 1 --rounds 3 > benchmarks/results/one_step_cpu/dmd_encode_speed.jsonl
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {"encoder and middle": [sys.executable, "-m", "cleardiffusion"],
            "full forward": [sys.executable, str(HERE / "dmd_full_forward.py")]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--autoguide", required=True)
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for variant, command in VARIANTS.items():
                out = Path(tmp) / f"{r}-{variant.replace(' ', '-')}"
                subprocess.run([*command, "distill", "--teacher", args.teacher, "--distill-method", "dmd",
                                "--dmd-t-max", "0.98", "--student", args.student, "--autoguide", args.autoguide,
                                "--teacher-guidance", str(args.guidance), "--time-budget", str(args.minutes), "--seed",
                                "0", "--out", str(out), "--no-progress", "--sample-every", "0"], check=True,
                               stdout=subprocess.DEVNULL)  # fmt: skip
                steps = json.loads((out / "summary.json").read_text())["step"]
                print(json.dumps({"variant": variant, "round": r, "minutes": args.minutes, "steps": steps,
                                  "student": args.student}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
