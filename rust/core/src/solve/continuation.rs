//! Adaptive continuation in one scalar parameter (richness gamma) towards a target: the step
//! doubles after a successful stage and halves after a failed one; stages are recorded as the
//! values reached (positive) and the failed attempts (negative).

/// Continuation from `done` towards `target`.
#[derive(Debug, Clone)]
pub struct Continuation {
    pub target: f64,
    /// The last value reached (the start before any stage).
    pub done: f64,
    /// The next step.
    pub step: f64,
    /// Reached values (positive) and failed attempts (negative), in order.
    pub stages: Vec<f64>,
    max_stages: usize,
}

impl Continuation {
    /// Starts at `done` with one step to the target; at most `max_stages` stages.
    pub fn new(done: f64, target: f64, max_stages: usize) -> Self {
        Continuation {
            target,
            done,
            step: target - done,
            stages: Vec::new(),
            max_stages,
        }
    }

    /// The value the next stage tries (the target once it is within one step), or None when the
    /// stage budget is spent.
    pub fn next(&self) -> Option<f64> {
        if self.stages.len() >= self.max_stages {
            return None;
        }
        Some(if (self.target - self.done) <= self.step * (1.0 + 1e-12) {
            self.target
        } else {
            self.done + self.step
        })
    }

    /// Records a successful stage at `g`; true when it reached the target (stop).
    pub fn succeeded(&mut self, g: f64) -> bool {
        self.done = g;
        self.stages.push(g);
        if self.done == self.target {
            return true;
        }
        self.step *= 2.0;
        false
    }

    /// Records a failed stage at `g`; true when the step has become too small to go on (stop).
    pub fn failed(&mut self, g: f64) -> bool {
        self.stages.push(-g);
        self.step *= 0.5;
        self.step < 1e-4 * self.target
    }

    /// Whether the target was reached.
    pub fn reached(&self) -> bool {
        self.done == self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_on_success_and_halve_on_failure() {
        let mut c = Continuation::new(0.0, 1.0, 10);
        c.step = 0.25;
        assert_eq!(c.next(), Some(0.25));
        assert!(!c.succeeded(0.25));
        assert_eq!(c.next(), Some(0.75));
        assert!(!c.failed(0.75));
        assert_eq!(c.next(), Some(0.5));
        assert!(!c.succeeded(0.5));
        assert_eq!(c.next(), Some(1.0));
        assert!(c.succeeded(1.0));
        assert!(c.reached());
        assert_eq!(c.stages, vec![0.25, -0.75, 0.5, 1.0]);
    }
}
