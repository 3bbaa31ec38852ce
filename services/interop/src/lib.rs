//! Data in and out (DESIGN.md §11): the files health centers and facilities already keep,
//! read in constant memory whatever their encoding; the exports prefectures send upward.
//! Pure: bytes in, domain values and rows out; the commands and reads are the callers'.

pub mod capacity;
pub mod cases;
pub mod dates;
pub mod export;
pub mod fhir;
pub mod report;
pub mod table;
pub mod text;
