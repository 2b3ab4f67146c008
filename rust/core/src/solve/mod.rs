//! What every solve shares: the report ([`SolveReport`]), the bookkeeping of a continuation
//! in a scalar parameter ([`continuation::Continuation`]) and paths over a list of points whose
//! solved points survive an interrupt ([`Path`]).
pub mod continuation;
pub mod path;
pub mod report;

pub use path::Path;
pub use report::SolveReport;
