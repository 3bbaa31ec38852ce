//! Projections: consume the JetStream event log and maintain the PostgreSQL read models
//! (`bed_board`, `placement_queue`, `case_board`, `facility_inbox`, `timeline`,
//! `public_stats`), committing each batch with its checkpoint in one transaction.
//!
//! Populated by the projections work; the crate exists now so the workspace has its
//! final shape.
