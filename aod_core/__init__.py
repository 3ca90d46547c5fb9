"""AoD Studio engine: schema-scaffolded diffusion generation steered by judge/optimizer agents."""

__version__ = "0.1.0"
