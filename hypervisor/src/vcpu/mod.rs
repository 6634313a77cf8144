//! Virtual CPUs: architectural guest state that is logic rather than register access.

pub mod inject;
