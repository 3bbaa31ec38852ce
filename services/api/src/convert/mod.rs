//! Parsing request messages into domain values, at the edge (DESIGN.md §3).

pub(crate) mod fields;
