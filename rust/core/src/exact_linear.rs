//! Exact posterior of a one-hidden-layer linear network at finite width (to be filled in).
