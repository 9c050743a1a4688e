//! The error type of the kernels.

use std::fmt;

/// Why a kernel refused its arguments. Each variant names the argument, so the message
/// tells the caller what to fix; no state has been modified when one is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// An array does not have the length the other arguments imply.
    Length {
        /// The argument's name.
        arg: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// An output buffer is too short for the worst case.
    TooShort {
        /// The argument's name.
        arg: &'static str,
        /// The length it needs at least.
        min: usize,
        /// The length it has.
        got: usize,
    },
    /// An index (a spike index or a CSR column index) lies outside its population.
    IndexOutOfRange {
        /// The argument holding the index.
        arg: &'static str,
        /// Where in that argument the bad index sits.
        position: usize,
        /// The index itself (negative values are reported as such).
        value: i64,
        /// The exclusive upper bound it must stay under.
        bound: usize,
    },
    /// The CSR structure is inconsistent (`indptr` not starting at 0, decreasing, or
    /// pointing past the end of `indices`).
    InvalidCsr {
        /// The argument at fault.
        arg: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A scalar parameter is outside its domain.
    Parameter {
        /// The parameter's name.
        arg: &'static str,
        /// What it must satisfy.
        expected: &'static str,
    },
    /// A population is too large for spikes to be numbered with `u32` indices.
    TooManyNeurons {
        /// The population size.
        len: usize,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { arg, expected, got } => {
                write!(f, "{arg}: expected length {expected}, got {got}")
            }
            Self::TooShort { arg, min, got } => {
                write!(f, "{arg}: expected at least {min} entries, got {got}")
            }
            Self::IndexOutOfRange {
                arg,
                position,
                value,
                bound,
            } => write!(
                f,
                "{arg}: index {value} at position {position} is out of range [0, {bound})"
            ),
            Self::InvalidCsr { arg, reason } => write!(f, "{arg}: invalid CSR structure: {reason}"),
            Self::Parameter { arg, expected } => write!(f, "{arg}: expected {expected}"),
            Self::TooManyNeurons { len } => write!(
                f,
                "population of {len} neurons is too large for uint32 spike indices"
            ),
        }
    }
}

impl std::error::Error for KernelError {}

/// Checks that `got` equals `expected`, naming `arg` otherwise.
pub(crate) fn check_len(arg: &'static str, expected: usize, got: usize) -> Result<(), KernelError> {
    if expected == got {
        Ok(())
    } else {
        Err(KernelError::Length { arg, expected, got })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument() {
        let e = check_len("i_syn", 4, 3).unwrap_err();
        assert_eq!(e.to_string(), "i_syn: expected length 4, got 3");
        let e = KernelError::IndexOutOfRange {
            arg: "spikes",
            position: 2,
            value: -1,
            bound: 10,
        };
        assert_eq!(
            e.to_string(),
            "spikes: index -1 at position 2 is out of range [0, 10)"
        );
        assert!(check_len("v", 5, 5).is_ok());
    }
}
