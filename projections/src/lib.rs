//! Projections: consume the JetStream event log and maintain the PostgreSQL read models
//! (DESIGN.md §6), committing each batch with its checkpoint in one transaction.
//!
//! The runner ([`runner`]), bulk rebuilds ([`rebuild`]) and one module per view:
//! [`bed_board`], [`placement_queue`], [`case_board`], [`facility_inbox`], [`timeline`],
//! [`public_stats`], [`consult_queue`], [`alerts`], [`placement_sla`] and [`bed_reconciliation`], each with its projection and, in its `query` module, the query
//! that answers with the view's protobuf message ([`views`] holds what they share).

pub mod alerts;
pub mod bed_board;
pub mod bed_reconciliation;
pub mod case_board;
pub mod consult_queue;
pub mod facility_inbox;
pub mod history;
pub mod placement_queue;
pub mod placement_sla;
pub mod public_stats;
pub mod rebuild;
pub mod runner;
pub mod timeline;
pub mod views;

use noroshi_event_store::RecordedEvent;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The read models' migrations (`projections/migrations`), recorded in their own table so
/// that they never mix with the event store's.
pub fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_sqlx_migrations_projections");
    migrator
}

/// Brings the read-model schema up to date. Safe to run concurrently and repeatedly.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    migrator().run(pool).await
}

// Dates in the views' JSON as ISO 8601 (`1950-04-01`), not serde's default tuple.
time::serde::format_description!(pub iso_date, Date, "[year]-[month]-[day]");

/// A placement's origin as the read models store it: `HOME` with the municipality code,
/// or `FACILITY` with the facility a transfer leaves.
pub(crate) fn origin_columns(origin: &noroshi_domain::placement::Origin) -> (&'static str, String) {
    use noroshi_domain::placement::Origin;
    match origin {
        Origin::Home(municipality) => ("HOME", municipality.to_string()),
        Origin::Facility(facility) => ("FACILITY", facility.to_string()),
    }
}

/// A list of strings as a PostgreSQL array literal (`{"a","b"}`), to pass one array per
/// row through `unnest($n::text[])` (which cannot take an array per row) and read it back
/// with `::text[]`. Each element is quoted, so commas, braces and spaces stay inside it.
pub fn text_array(values: &[String]) -> String {
    let mut literal = String::with_capacity(2 + values.iter().map(|v| v.len() + 3).sum::<usize>());
    literal.push('{');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

/// The id of the case or placement an event belongs to.
pub(crate) fn aggregate_uuid(event: &RecordedEvent) -> Result<uuid::Uuid, sqlx::Error> {
    event.stream_id.aggregate_uuid().ok_or_else(|| {
        sqlx::Error::Decode(format!("stream {} does not end in a UUID", event.stream_id).into())
    })
}

/// The ids of the cases and of the placements whose events are in `batch`.
pub(crate) fn case_and_placement_ids(
    batch: &[(RecordedEvent, noroshi_domain::DomainEvent)],
) -> Result<(Vec<uuid::Uuid>, Vec<uuid::Uuid>), sqlx::Error> {
    use noroshi_domain::DomainEvent;
    let (mut cases, mut placements) = (Vec::new(), Vec::new());
    for (event, decoded) in batch {
        match decoded {
            DomainEvent::Case(_) => cases.push(aggregate_uuid(event)?),
            DomainEvent::Placement(_) => placements.push(aggregate_uuid(event)?),
            DomainEvent::Facility(_)
            | DomainEvent::Consult(_)
            | DomainEvent::Alert(_)
            | DomainEvent::AlertRules(_) => {}
        }
    }
    Ok((cases, placements))
}

/// Every view with a read model of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    BedBoard,
    PlacementQueue,
    CaseBoard,
    FacilityInbox,
    Timeline,
    PublicStats,
    ConsultQueue,
    Alerts,
    PlacementSla,
    BedReconciliation,
}

/// Something to do with one projection, whatever its type (see [`View::visit`]).
pub trait Visitor {
    type Output;
    fn visit<P: runner::Projection + Copy>(self, projection: P) -> Self::Output;
}

impl View {
    /// Every view, in the order `noroshi rebuild --all` rebuilds them.
    pub const ALL: &'static [Self] = &[
        Self::BedBoard,
        Self::PlacementQueue,
        Self::CaseBoard,
        Self::FacilityInbox,
        Self::Timeline,
        Self::PublicStats,
        Self::ConsultQueue,
        Self::Alerts,
        Self::PlacementSla,
        Self::BedReconciliation,
    ];

    pub fn name(self) -> &'static str {
        use runner::Projection;
        match self {
            Self::BedBoard => bed_board::BedBoard::NAME,
            Self::PlacementQueue => placement_queue::PlacementQueue::NAME,
            Self::CaseBoard => case_board::CaseBoard::NAME,
            Self::FacilityInbox => facility_inbox::FacilityInbox::NAME,
            Self::Timeline => timeline::Timeline::NAME,
            Self::PublicStats => public_stats::PublicStats::NAME,
            Self::ConsultQueue => consult_queue::ConsultQueue::NAME,
            Self::Alerts => alerts::Alerts::NAME,
            Self::PlacementSla => placement_sla::PlacementSla::NAME,
            Self::BedReconciliation => bed_reconciliation::BedReconciliation::NAME,
        }
    }

    /// The aggregate types of the streams its projection reads
    /// ([`runner::Projection::SOURCES`]).
    pub fn sources(self) -> &'static [&'static str] {
        use runner::Projection;
        match self {
            Self::BedBoard => bed_board::BedBoard::SOURCES,
            Self::PlacementQueue => placement_queue::PlacementQueue::SOURCES,
            Self::CaseBoard => case_board::CaseBoard::SOURCES,
            Self::FacilityInbox => facility_inbox::FacilityInbox::SOURCES,
            Self::Timeline => timeline::Timeline::SOURCES,
            Self::PublicStats => public_stats::PublicStats::SOURCES,
            Self::ConsultQueue => consult_queue::ConsultQueue::SOURCES,
            Self::Alerts => alerts::Alerts::SOURCES,
            Self::PlacementSla => placement_sla::PlacementSla::SOURCES,
            Self::BedReconciliation => bed_reconciliation::BedReconciliation::SOURCES,
        }
    }

    /// The tables of its read model ([`runner::Projection::TABLES`]).
    pub fn tables(self) -> &'static [&'static str] {
        use runner::Projection;
        match self {
            Self::BedBoard => bed_board::BedBoard::TABLES,
            Self::PlacementQueue => placement_queue::PlacementQueue::TABLES,
            Self::CaseBoard => case_board::CaseBoard::TABLES,
            Self::FacilityInbox => facility_inbox::FacilityInbox::TABLES,
            Self::Timeline => timeline::Timeline::TABLES,
            Self::PublicStats => public_stats::PublicStats::TABLES,
            Self::ConsultQueue => consult_queue::ConsultQueue::TABLES,
            Self::Alerts => alerts::Alerts::TABLES,
            Self::PlacementSla => placement_sla::PlacementSla::TABLES,
            Self::BedReconciliation => bed_reconciliation::BedReconciliation::TABLES,
        }
    }

    /// The views whose read models its answers are read from: its own, and the bed
    /// board's facilities for the inbox (origin areas) and the public statistics.
    pub fn reads(self) -> &'static [Self] {
        match self {
            Self::FacilityInbox => &[Self::FacilityInbox, Self::BedBoard],
            Self::PublicStats => &[Self::PublicStats, Self::BedBoard],
            Self::PlacementSla => &[Self::PlacementSla, Self::BedBoard],
            Self::BedBoard => &[Self::BedBoard],
            Self::PlacementQueue => &[Self::PlacementQueue],
            Self::CaseBoard => &[Self::CaseBoard],
            Self::Timeline => &[Self::Timeline],
            Self::ConsultQueue => &[Self::ConsultQueue],
            Self::Alerts => &[Self::Alerts],
            Self::BedReconciliation => &[Self::BedReconciliation],
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|view| view.name() == name)
    }

    /// Calls `visitor` with this view's projection.
    pub fn visit<V: Visitor>(self, visitor: V) -> V::Output {
        match self {
            Self::BedBoard => visitor.visit(bed_board::BedBoard),
            Self::PlacementQueue => visitor.visit(placement_queue::PlacementQueue),
            Self::CaseBoard => visitor.visit(case_board::CaseBoard),
            Self::FacilityInbox => visitor.visit(facility_inbox::FacilityInbox),
            Self::Timeline => visitor.visit(timeline::Timeline),
            Self::PublicStats => visitor.visit(public_stats::PublicStats),
            Self::ConsultQueue => visitor.visit(consult_queue::ConsultQueue),
            Self::Alerts => visitor.visit(alerts::Alerts),
            Self::PlacementSla => visitor.visit(placement_sla::PlacementSla),
            Self::BedReconciliation => visitor.visit(bed_reconciliation::BedReconciliation),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_text_array_literal_quotes_every_element() {
        let values = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(super::text_array(&[]), "{}");
        assert_eq!(
            super::text_array(&values(&["ube-medical", "妊娠後期、急変の恐れ"])),
            r#"{"ube-medical","妊娠後期、急変の恐れ"}"#
        );
        assert_eq!(
            super::text_array(&values(&[r#"a "b", {c}\d"#, "", "NULL"])),
            r#"{"a \"b\", {c}\\d","","NULL"}"#
        );
    }
}
