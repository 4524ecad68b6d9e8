"""seglab: Hydra config groups in front of mmsegmentation 1.x and mmengine's Runner."""

__version__ = "0.1.0"
