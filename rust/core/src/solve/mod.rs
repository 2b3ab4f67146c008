//! What every solve shares: the report ([`SolveReport`]) and the bookkeeping of a continuation
//! in a scalar parameter ([`continuation::Continuation`]).
pub mod continuation;
pub mod report;

pub use report::SolveReport;
