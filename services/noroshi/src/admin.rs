//! `noroshi admin`.

use std::io::Write;

use noroshi_api::admin::{self, AdminFile, Outcome, Plan};
use noroshi_api::commands::{CommandHandler, CommandSettings, system_clock};
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::placement::PlacementPolicy;
use noroshi_domain::values::{FacilityId, PrincipalId};
use noroshi_event_store::{EventStore, Prefecture, StoreLimits};

use crate::cli::{AdminArgs, AdminCommand, ApplyArgs};
use crate::serve::{ServeError, pool};

/// The organisation of the operator's own principal.
const ADMIN_ORGANISATION: &str = "noroshi-admin";

pub(crate) async fn run(args: AdminArgs) -> Result<(), ServeError> {
    match args.command {
        AdminCommand::Apply(args) => apply(args).await,
    }
}

async fn apply(args: ApplyArgs) -> Result<(), ServeError> {
    let file = AdminFile::load(&args.file).map_err(ServeError::Admin)?;
    let plan = Plan::check(&file, &args.prefecture).map_err(ServeError::Admin)?;
    let admin = Principal {
        principal_id: PrincipalId::parse(&args.actor).map_err(|e| {
            ServeError::Admin(admin::AdminError::Invalid(vec![format!("--actor {e}")]))
        })?,
        organisation_id: FacilityId::parse(ADMIN_ORGANISATION).map_err(|e| {
            ServeError::Admin(admin::AdminError::Invalid(vec![format!(
                "organisation {e}"
            )]))
        })?,
        role: Role::Admin,
    };
    let pool = pool(&args.database)?;
    let settings = CommandSettings {
        prefecture: Prefecture::parse(&args.prefecture).map_err(ServeError::Prefecture)?,
        policy: PlacementPolicy::default(),
        max_attempts: 8,
        cache_capacity: plan.facilities().len().max(1),
    };
    let handler = CommandHandler::new(
        EventStore::new(pool.clone(), StoreLimits::default()),
        settings,
        system_clock(),
    );
    let report = admin::apply(&handler, &admin, &plan, args.dry_run).await;
    pool.close().await;
    let report = report.map_err(ServeError::Admin)?;

    let mut out = std::io::stdout().lock();
    let verb = if args.dry_run { "would be " } else { "" };
    let mut write = || -> std::io::Result<()> {
        for (id, outcome) in &report.facilities {
            if *outcome != Outcome::Unchanged {
                writeln!(out, "{verb}{outcome}: {id}")?;
            }
        }
        writeln!(
            out,
            "facilities: {} {verb}registered, {} {verb}updated, {} unchanged; tokens checked: {}",
            report.count(Outcome::Registered),
            report.count(Outcome::Updated),
            report.count(Outcome::Unchanged),
            report.tokens,
        )
    };
    write().map_err(ServeError::Output)
}
