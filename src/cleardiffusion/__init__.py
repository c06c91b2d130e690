"""cleardiffusion: DDPM, DDIM and classifier-free guidance you can read like a paper and run like a product."""

__version__ = "0.1.0"
