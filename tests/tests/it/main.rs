//! The black-box suites, one module each, in one test binary: linking the whole stack
//! once rather than once per suite keeps the build lean on small machines.
//!
//! Each suite starts the real things it needs (a fresh PostgreSQL database per test, a
//! private nats-server, the noroshi binary or an in-process `Application`), so suites
//! and tests run in parallel without sharing state.

mod admin;
mod alerts;
mod architecture;
mod authorization;
mod browser;
mod candidates;
mod care_sites;
mod case_views;
mod commands;
mod consults;
mod drills;
mod event_store;
mod exports;
mod fhir;
mod fuzz;
mod healing;
mod history;
mod http_commands;
mod identity;
mod imports;
mod outage;
mod projections;
mod relay;
mod reports;
mod request_spans;
mod secrets;
mod simulate;
mod sla;
mod slow_clients;
mod stores;
mod timers;
mod tls;
mod transfers;
mod views;
