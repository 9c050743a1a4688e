//! A per-neuron parameter that is either one value for the whole population or an array.

use super::error::{check_len, KernelError};
use super::population::{SplitAt, BLOCK};

/// A neuron parameter (or an input current): a scalar shared by all neurons, or one
/// value per neuron.
///
/// Kernels walk the population in blocks of [`BLOCK`] neurons and see every parameter
/// as a slice of the block's length; a scalar is expanded once into a block-sized
/// buffer that stays in L1. One vectorized inner loop thus serves every mix of scalars
/// and arrays, without a specialization for each combination.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Param<'a> {
    /// The same value for every neuron.
    Scalar(f32),
    /// One value per neuron.
    PerNeuron(&'a [f32]),
}

impl<'a> Param<'a> {
    /// Checks that a per-neuron parameter covers `n` neurons.
    pub fn check_len(&self, arg: &'static str, n: usize) -> Result<(), KernelError> {
        match self {
            Self::Scalar(_) => Ok(()),
            Self::PerNeuron(s) => check_len(arg, n, s.len()),
        }
    }

    /// The block-sized buffer a scalar reads from (unused for arrays).
    pub(crate) fn block_buffer(&self) -> [f32; BLOCK] {
        match self {
            Self::Scalar(x) => [*x; BLOCK],
            Self::PerNeuron(_) => [0.0; BLOCK],
        }
    }

    /// The values for neurons `start..start + len`, `len <= BLOCK`.
    pub(crate) fn block<'s>(
        &'s self,
        buffer: &'s [f32; BLOCK],
        start: usize,
        len: usize,
    ) -> &'s [f32]
    where
        'a: 's,
    {
        match self {
            Self::Scalar(_) => &buffer[..len],
            Self::PerNeuron(s) => &s[start..start + len],
        }
    }
}

impl SplitAt for Param<'_> {
    fn split_at(self, mid: usize) -> (Self, Self) {
        match self {
            Self::Scalar(x) => (Self::Scalar(x), Self::Scalar(x)),
            Self::PerNeuron(s) => {
                let (a, b) = s.split_at(mid);
                (Self::PerNeuron(a), Self::PerNeuron(b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_and_array_blocks() {
        let s = Param::Scalar(2.5);
        let buf = s.block_buffer();
        assert_eq!(s.block(&buf, 7, 3), &[2.5, 2.5, 2.5]);
        let data = [1.0, 2.0, 3.0, 4.0];
        let a = Param::PerNeuron(&data);
        let buf = a.block_buffer();
        assert_eq!(a.block(&buf, 1, 2), &[2.0, 3.0]);
        let (l, r) = a.split_at(1);
        assert_eq!(l, Param::PerNeuron(&[1.0]));
        assert_eq!(r, Param::PerNeuron(&[2.0, 3.0, 4.0]));
        assert!(a.check_len("a", 4).is_ok());
        assert_eq!(
            a.check_len("a", 5),
            Err(KernelError::Length {
                arg: "a",
                expected: 5,
                got: 4
            })
        );
        assert!(s.check_len("a", 99).is_ok());
    }
}
