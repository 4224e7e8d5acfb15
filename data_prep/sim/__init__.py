"""Synthetic plants: the embedded default data of MAX-FM."""

from data_prep.sim.plants import make_plants

__all__ = ["make_plants"]
