//! The one report type of every iterative solve: theories' solutions carry it as `report`, the
//! optimizers return it next to their solution.

/// How a solve went.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveReport {
    /// Whether the stopping rule was met (for a continuation: the target was reached, too).
    pub converged: bool,
    /// Iterations (summed over the solves of a continuation).
    pub n_iter: usize,
    /// Objective or residual evaluations.
    pub n_eval: usize,
    /// The solver's convergence measure at the solution (dimensionless).
    pub residual: f64,
    /// The measure at the start and after every iteration.
    pub residual_history: Vec<f64>,
    /// Continuation stages: the parameter values reached (positive) and failed attempts
    /// (negative); empty for a direct solve.
    pub stages: Vec<f64>,
    /// Name of the solver or evaluator used.
    pub solver: &'static str,
}

impl SolveReport {
    /// A report of a direct solve (no continuation stages).
    pub fn new(
        solver: &'static str,
        converged: bool,
        n_iter: usize,
        n_eval: usize,
        residual: f64,
        residual_history: Vec<f64>,
    ) -> Self {
        SolveReport {
            converged,
            n_iter,
            n_eval,
            residual,
            residual_history,
            stages: Vec::new(),
            solver,
        }
    }
}
