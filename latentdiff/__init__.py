"""latentdiff: latent diffusion made cheap enough to run where people need it."""

__version__ = "0.1.0"
