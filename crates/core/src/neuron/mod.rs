//! Spiking neurons (IF, LIF, PLIF) and surrogate gradients, multi-step.
