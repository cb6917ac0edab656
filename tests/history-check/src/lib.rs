//! `ds-history-check`: checks a recorded history of client operations (the jetstream mode under
//! network faults, issue 27) against the final state of every stream, the way recorded-history
//! checkers such as Jepsen's do. `model` reads histories, `check` reports every violation with
//! the operations involved. No I/O beyond what the binary reads.

pub mod check;
pub mod model;

pub use check::{check, Report, Rule, Violation};
pub use model::{parse_final, parse_history, Answer, Final, FinalStream, Kind, Op, Stamp};
