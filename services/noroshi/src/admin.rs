//! `noroshi admin`.

use std::io::Write;

use crate::apply::{AdminFile, Outcome, Plan};
use noroshi_app::{CommandHandler, CommandSettings, system_clock};
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::placement::PlacementPolicy;
use noroshi_domain::values::{FacilityId, PrincipalId};
use noroshi_event_store::{EventStore, Prefecture, StoreLimits};

use base64::Engine;
use noroshi_domain::values::FacilityKind;
use noroshi_identity::certificates;
use noroshi_identity::clients::{self, NewClient};
use noroshi_identity::users::{self, NewUser, Password, UserChange};
use sqlx::PgPool;

use crate::application::pool;
use crate::cli::{
    AdminArgs, AdminCommand, ApplyArgs, CaArgs, CaCommand, ClientArgs, ClientCommand, UserArgs,
    UserCommand,
};
use crate::error::ServeError;

/// The organisation of the operator's own principal.
const ADMIN_ORGANISATION: &str = "noroshi-admin";

pub async fn run(args: AdminArgs) -> Result<(), ServeError> {
    match args.command {
        AdminCommand::Apply(args) => apply(args).await,
        AdminCommand::User(args) => user(args).await,
        AdminCommand::Client(args) => client(args).await,
        AdminCommand::Ca(args) => ca(args).await,
    }
}

/// The operator's ADMIN principal, named `actor`.
fn admin_principal(actor: &str) -> Result<Principal, ServeError> {
    Ok(Principal {
        principal_id: PrincipalId::parse(actor).map_err(|e| {
            ServeError::Admin(crate::apply::AdminError::Invalid(vec![format!(
                "--actor {e}"
            )]))
        })?,
        organisation_id: FacilityId::parse(ADMIN_ORGANISATION).map_err(|e| {
            ServeError::Admin(crate::apply::AdminError::Invalid(vec![format!(
                "organisation {e}"
            )]))
        })?,
        role: Role::Admin,
    })
}

/// A command handler over `pool`, for reading and registering facilities.
pub(crate) fn handler(
    pool: &PgPool,
    prefecture: &str,
    cache: usize,
) -> Result<CommandHandler, ServeError> {
    let settings = CommandSettings {
        prefecture: Prefecture::parse(prefecture).map_err(ServeError::Prefecture)?,
        policy: PlacementPolicy::default(),
        max_attempts: 8,
        cache_capacity: cache.max(1),
    };
    Ok(CommandHandler::new(
        EventStore::new(pool.clone(), StoreLimits::default()),
        settings,
        system_clock(),
    ))
}

/// The kind of a registered organisation, or an error naming it.
async fn organisation_kind(
    handler: &CommandHandler,
    organisation: &str,
) -> Result<Option<FacilityKind>, ServeError> {
    let Ok(id) = FacilityId::parse(organisation) else {
        return Ok(None);
    };
    let (facility, _) = handler.facility(&id).await.map_err(ServeError::Command)?;
    Ok(facility.profile.map(|p| p.kind))
}

fn print(text: impl std::fmt::Display) -> Result<(), ServeError> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(ServeError::Output)
}

/// A password for a user to change: 24 URL-safe characters (144 bits).
fn generated_password() -> Result<Password, ServeError> {
    let mut bytes = [0_u8; 18];
    getrandom::fill(&mut bytes).map_err(|e| ServeError::Output(std::io::Error::other(e)))?;
    Ok(Password::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

async fn user(args: UserArgs) -> Result<(), ServeError> {
    let actor = admin_principal(&args.actor.actor)?;
    let pool = pool(&args.database.config())?;
    let via = "noroshi admin user";
    match args.command {
        UserCommand::Add {
            username,
            organisation,
            role,
            display_name,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(ServeError::Output)?;
                (Password::new(line.trim_end_matches(['\r', '\n'])), false)
            } else {
                (generated_password()?, true)
            };
            let handler = handler(&pool, &args.actor.prefecture, 1)?;
            let kind = organisation_kind(&handler, &organisation).await?;
            let user = NewUser {
                username,
                display_name,
                organisation_id: organisation,
                role,
                password: password.clone(),
            };
            let created = users::create(&pool, &actor, &user, kind, via)
                .await
                .map_err(ServeError::Identity)?;
            print(format_args!(
                "created {} ({} of {})",
                created.username, created.role, created.organisation_id
            ))?;
            if generated {
                print(format_args!("password: {}", password.expose()))?;
            }
        }
        UserCommand::ResetPassword { username } => {
            let password = generated_password()?;
            users::reset_password(&pool, &actor, &username, &password, via)
                .await
                .map_err(ServeError::Identity)?;
            print(format_args!(
                "new password of {username}: {}",
                password.expose()
            ))?;
        }
        UserCommand::Disable { ref username } | UserCommand::Enable { ref username } => {
            let disabled = matches!(args.command, UserCommand::Disable { .. });
            let change = UserChange {
                display_name: None,
                disabled: Some(disabled),
            };
            users::update(&pool, &actor, username, &change, via)
                .await
                .map_err(ServeError::Identity)?;
            print(format_args!(
                "{username} {}",
                if disabled { "disabled" } else { "enabled" }
            ))?;
        }
        UserCommand::List => {
            for user in users::list(&pool, &actor)
                .await
                .map_err(ServeError::Identity)?
            {
                print(format_args!(
                    "{}\t{}\t{}\t{}{}",
                    user.username,
                    user.organisation_id,
                    user.role,
                    user.display_name,
                    if user.disabled { "\t(disabled)" } else { "" }
                ))?;
            }
        }
    }
    pool.close().await;
    Ok(())
}

async fn client(args: ClientArgs) -> Result<(), ServeError> {
    let actor = admin_principal(&args.actor.actor)?;
    let pool = pool(&args.database.config())?;
    let via = "noroshi admin client";
    match args.command {
        ClientCommand::Issue {
            name,
            organisation,
            scopes,
            expires_in,
        } => {
            let handler = handler(&pool, &args.actor.prefecture, 1)?;
            let kind = organisation_kind(&handler, &organisation).await?;
            let client = NewClient {
                name,
                organisation_id: organisation,
                scopes,
                lifetime: expires_in,
            };
            let issued = clients::issue(&pool, &actor, &client, kind, via)
                .await
                .map_err(ServeError::Identity)?;
            print(format_args!(
                "client {} for {} ({}), scopes {}, expires {}",
                issued.client.client_id,
                issued.client.organisation_id,
                issued.client.role,
                issued.client.scopes.join(","),
                issued.client.expires_at
            ))?;
            print(format_args!("token (shown once): {}", issued.token))?;
        }
        ClientCommand::Revoke { client_id } => {
            let client_id = uuid::Uuid::parse_str(&client_id).map_err(|_| {
                ServeError::Api(noroshi_api::ApiError::invalid(
                    "client_id",
                    "must be a UUID",
                ))
            })?;
            let revoked = clients::revoke(&pool, &actor, client_id, via)
                .await
                .map_err(ServeError::Identity)?;
            print(format_args!(
                "revoked {} ({})",
                revoked.client_id, revoked.name
            ))?;
        }
        ClientCommand::List => {
            for client in clients::list(&pool, &actor)
                .await
                .map_err(ServeError::Identity)?
            {
                print(format_args!(
                    "{}\t{}\t{}\t{}\texpires {}{}",
                    client.client_id,
                    client.organisation_id,
                    client.name,
                    client.scopes.join(","),
                    client.expires_at,
                    if client.revoked_at.is_some() {
                        "\t(revoked)"
                    } else {
                        ""
                    }
                ))?;
            }
        }
    }
    pool.close().await;
    Ok(())
}

async fn ca(args: CaArgs) -> Result<(), ServeError> {
    match args.command {
        CaCommand::Init => {
            let path = certificates::init_ca(&args.dir).map_err(ServeError::Tls)?;
            print(format_args!(
                "CA created: {} (keep {} secret)",
                path.display(),
                args.dir.join(certificates::CA_KEY).display()
            ))
        }
        CaCommand::Server {
            names,
            out_dir,
            days,
        } => {
            let issued =
                certificates::issue_server(&args.dir, &names, days).map_err(ServeError::Tls)?;
            let cert = out_dir.join("server.pem");
            let key = out_dir.join("server-key.pem");
            write_pair(&cert, &key, &issued)?;
            print(format_args!(
                "server certificate {} for {}: {}, {}",
                issued.serial,
                names.join(", "),
                cert.display(),
                key.display()
            ))
        }
        CaCommand::Issue {
            organisation,
            database,
            actor,
            out_dir,
            days,
        } => {
            let admin = admin_principal(&actor.actor)?;
            let pool = pool(&database.config())?;
            let handler = handler(&pool, &actor.prefecture, 1)?;
            let kind = organisation_kind(&handler, &organisation)
                .await?
                .ok_or_else(|| {
                    ServeError::Api(noroshi_api::ApiError::invalid(
                        "organisation",
                        format!("{organisation} is not a registered organisation"),
                    ))
                })?;
            let issued =
                certificates::issue_client(&pool, &args.dir, &admin, &organisation, kind, days)
                    .await
                    .map_err(ServeError::Issue)?;
            pool.close().await;
            let cert = out_dir.join(format!("{organisation}-{}.pem", issued.serial));
            let key = out_dir.join(format!("{organisation}-{}-key.pem", issued.serial));
            write_pair(&cert, &key, &issued)?;
            print(format_args!(
                "client certificate {} for {organisation}: {}, {} (see docs/identity.md to install it)",
                issued.serial,
                cert.display(),
                key.display()
            ))
        }
        CaCommand::Revoke { serial, database } => {
            let pool = pool(&database.config())?;
            let revoked = certificates::revoke(&pool, &serial)
                .await
                .map_err(ServeError::Identity)?;
            pool.close().await;
            if revoked {
                print(format_args!("revoked certificate {serial}"))
            } else {
                Err(ServeError::Api(noroshi_api::ApiError::NotFound(format!(
                    "unrevoked certificate {serial}"
                ))))
            }
        }
    }
}

/// Writes a certificate and its key (the key readable by its owner only).
fn write_pair(
    cert: &std::path::Path,
    key: &std::path::Path,
    issued: &certificates::IssuedPem,
) -> Result<(), ServeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = |path: &std::path::Path, contents: &str, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut file| file.write_all(contents.as_bytes()))
            .map_err(ServeError::Output)
    };
    write(key, &issued.key_pem, 0o600)?;
    write(cert, &issued.cert_pem, 0o644)
}

async fn apply(args: ApplyArgs) -> Result<(), ServeError> {
    let file = AdminFile::load(&args.file).map_err(ServeError::Admin)?;
    let plan = Plan::check(&file, &args.prefecture).map_err(ServeError::Admin)?;
    let admin = admin_principal(&args.actor)?;
    let pool = pool(&args.database.config())?;
    let handler = handler(&pool, &args.prefecture, plan.facilities().len())?;
    let report = crate::apply::apply(&handler, &admin, &plan, args.dry_run).await;
    let areas = match &report {
        Ok(_) => Some(crate::apply::apply_areas(&pool, &file.area, args.dry_run).await),
        Err(_) => None,
    };
    let users = match &report {
        Ok(_) => {
            Some(crate::apply::apply_users(&pool, &handler, &admin, &file.user, args.dry_run).await)
        }
        Err(_) => None,
    };
    pool.close().await;
    let report = report.map_err(ServeError::Admin)?;
    let areas = areas
        .transpose()
        .map_err(ServeError::Admin)?
        .unwrap_or_default();
    let (created, existing) = users
        .transpose()
        .map_err(ServeError::Admin)?
        .unwrap_or_default();

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
            "facilities: {} {verb}registered, {} {verb}updated, {} unchanged; tokens checked: {}; \
             users: {created} {verb}created, {existing} existing; medical areas: {areas}",
            report.count(Outcome::Registered),
            report.count(Outcome::Updated),
            report.count(Outcome::Unchanged),
            report.tokens,
        )
    };
    write().map_err(ServeError::Output)
}
