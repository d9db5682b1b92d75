"""Domain-free latent diffusion core: tensors of shape (batch, channels, time) in, tensors out."""
