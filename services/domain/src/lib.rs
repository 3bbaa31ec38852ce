//! The noroshi domain: facility, case and placement aggregates as pure
//! `decide(&state, command) -> events` and `evolve(state, &event) -> state` functions,
//! their value objects, and the authorization rules of DESIGN.md §7.
//!
//! Pure and synchronous: no I/O, no clock reads, no randomness. Populated by the
//! domain-and-command-API work; the crate exists now so the workspace has its final shape.
