"""cleardiffusion: DDPM, DDIM and classifier-free guidance you can read like a paper and run like a product.

The Python API (api.py) is importable from here: `load`, `Model`, `train_model`, `TrainConfig`,
`evaluate_samples`, `SamplingRecipe`. The names load on first use, so `import cleardiffusion` (and the command
line's --help) stays fast; none of them is the name of one of the package's modules.
"""

__version__ = "0.1.0"
__all__ = ["Model", "SamplingRecipe", "TrainConfig", "evaluate_samples", "load", "train_model"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'cleardiffusion' has no attribute {name!r}")
