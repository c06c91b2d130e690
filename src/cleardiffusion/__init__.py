"""cleardiffusion: DDPM, DDIM and classifier-free guidance you can read like a paper and run like a product.

The Python API (api.py) is importable from here: `load`, `Model`, `train`, `TrainConfig`, `evaluate`,
`SamplingRecipe`. The names load on first use, so `import cleardiffusion` (and the command line's --help)
stays fast.
"""

__version__ = "0.1.0"
__all__ = ["Model", "SamplingRecipe", "TrainConfig", "evaluate", "load", "train"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'cleardiffusion' has no attribute {name!r}")
