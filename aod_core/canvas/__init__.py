"""The canvas a diffusion generator fills: the schema scaffold (character and token level), value languages and their automata, constraints, the prompt."""
