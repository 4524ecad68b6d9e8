"""seglab's Hydra plugins; Hydra finds them in the `hydra_plugins` namespace package."""
