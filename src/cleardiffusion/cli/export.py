"""`cleardiffusion export`: a checkpoint's EMA network -> an ONNX file that `sample` runs with ONNX Runtime."""

import argparse

EPILOG = """\
examples:
  cleardiffusion export --checkpoint runs/mnist/checkpoints/last.pt --out mnist.onnx
  cleardiffusion sample --checkpoint mnist.onnx --class-label all --guidance 3 --n 100 \\
      --out grid.png                  # the default sampler, the network run by ONNX Runtime
  cleardiffusion export --checkpoint runs/mnist/checkpoints/last.pt --no-ema --out raw.onnx

The file holds the network (its native prediction: eps, v or x_0; a dynamic batch) and, in its metadata,
what a sampler needs to read it: objective, prediction, noise schedule, image shape, classes. In Python:
cleardiffusion.load("mnist.onnx").sample(16). DDPM and flow-matching checkpoints export; few-step ones
(distill, meanflow) do not. ONNX Runtime runs in fp32; on a CPU with native bf16 the PyTorch path in bf16 is
faster (benchmarks/results/sampler_speed_cpu). Needs the optional extra: pip install -e ".[onnx]".
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a checkpoint's network as ONNX (with its schedule and prediction) for ONNX Runtime",
        description="Export the EMA denoiser of a checkpoint to ONNX, checked against PyTorch on export.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a .pt file written by `cleardiffusion train`")
    p.add_argument("--out", required=True, help="FILE.onnx")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_onnx, require_onnx
    from ..files import output_file

    require_onnx()  # before reading the checkpoint: the fix is an install
    out = output_file(args.out, "--out", (".onnx",))
    info = export_onnx(args.checkpoint, out, use_ema=not args.no_ema)
    classes = f"{info['num_classes']} classes" if info["num_classes"] else "unconditional"
    print(f"wrote {out} ({info['objective']}, {info['prediction']} prediction, {info['schedule']} schedule "
          f"T={info['timesteps']}, {classes}, {'raw' if args.no_ema else 'EMA'} weights, dynamic batch); sample it "
          f"with: cleardiffusion sample --checkpoint {out} --out grid.png")  # fmt: skip
    return 0
