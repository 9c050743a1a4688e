//! Vectorized spike-update kernels over slices.
