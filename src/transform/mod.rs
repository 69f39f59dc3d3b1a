//! Payload transforms (`transform`, README, Routing and payloads): jq programs run with the jaq
//! crates.
//!
//! [`engine`] compiles and runs a program (pure, no I/O: the environment, file and logging
//! filters of jq are removed from the library); [`pool`] runs programs in warm child processes of
//! this binary ([`worker`]), killed past 1 s or 256 MiB, because jaq cannot be interrupted and
//! deep recursion overflows the stack: a runaway program must not stall or crash the dispatcher.

pub mod engine;
pub mod pool;
pub mod worker;

pub use engine::{check_program, Program, MAX_PROGRAM_BYTES};
pub use pool::TransformPool;

/// The hidden subcommand that turns this binary into a transform worker.
pub const WORKER_SUBCOMMAND: &str = "transform-worker";
