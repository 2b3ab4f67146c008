//! Paths: solutions at a list of points (widths, temperatures, gammas), in order, each
//! warm-started from the ones before. An interrupt keeps the points already solved: every
//! theory's `solve_path` walks its points with [`Path::walk`].
use crate::error::{AkError, Result};

/// Solutions along a path, in the order of its points. `interrupted`: a Ctrl-C stopped the
/// path before its end; `solutions` holds the points solved before it (a prefix of the path,
/// each complete), the point in progress is dropped.
#[derive(Debug, Clone)]
pub struct Path<S> {
    pub solutions: Vec<S>,
    pub interrupted: bool,
}

impl<S> Path<S> {
    /// Solves `points` in order with `step(point, solutions so far)`. An interrupt
    /// ([`AkError::Interrupted`]) after at least one solved point ends the path, marked
    /// `interrupted`; before any, it is the error (there is nothing to keep). Other errors
    /// propagate.
    pub fn walk<P>(points: &[P], mut step: impl FnMut(&P, &[S]) -> Result<S>) -> Result<Self> {
        let mut solutions = Vec::with_capacity(points.len());
        for pt in points {
            match step(pt, &solutions) {
                Ok(s) => solutions.push(s),
                Err(AkError::Interrupted) if !solutions.is_empty() => {
                    return Ok(Path { solutions, interrupted: true })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Path { solutions, interrupted: false })
    }

    /// The same path with `f` applied to each solution.
    pub fn map<T>(self, f: impl FnMut(S) -> T) -> Path<T> {
        Path {
            solutions: self.solutions.into_iter().map(f).collect(),
            interrupted: self.interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::invalid;

    #[test]
    fn an_interrupt_keeps_the_points_solved_before_it() {
        let p = Path::walk(&[1, 2, 3, 4], |&x, done: &[i32]| {
            if x == 3 {
                Err(AkError::Interrupted)
            } else {
                Ok(x + done.len() as i32)
            }
        })
        .unwrap();
        assert_eq!(p.solutions, vec![1, 3]);
        assert!(p.interrupted);
        let full = Path::walk(&[1, 2], |&x, _: &[i32]| Ok(x)).unwrap();
        assert_eq!((full.solutions, full.interrupted), (vec![1, 2], false));
    }

    #[test]
    fn an_interrupt_at_the_first_point_and_other_errors_are_errors() {
        let first = Path::<i32>::walk(&[1, 2], |_, _| Err(AkError::Interrupted));
        assert!(matches!(first, Err(AkError::Interrupted)));
        let other = Path::walk(&[1, 2], |&x, _: &[i32]| {
            if x == 2 {
                Err(invalid("x", "bad"))
            } else {
                Ok(x)
            }
        });
        assert!(matches!(other, Err(AkError::InvalidArgument { .. })));
    }
}
