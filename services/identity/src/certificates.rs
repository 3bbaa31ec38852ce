//! Client certificates from the deployment's own CA (docs/identity.md).
//!
//! `noroshi admin ca init` creates the CA; `noroshi admin ca issue <org>` issues a
//! certificate whose subject names the organisation (CN) and its role (OU), and registers
//! its SHA-256 fingerprint with the organisation. TLS checks the chain; this module maps
//! a presented certificate to its organisation through the register, so a certificate
//! can be revoked, and one that was never registered proves nothing even if signed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::FacilityKind;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::secrets::{digest_bytes, random_bytes};
use crate::audit;
use crate::error::{IdentityError, store_failure};

/// File names inside a CA directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";

/// Whether, and how, a TLS listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientCertificates {
    /// None asked for.
    #[default]
    Off,
    /// Asked for and checked when presented; a connection without one still works with
    /// other credentials.
    Optional,
    /// Every connection must present one from the CA.
    Required,
}

/// A TLS listener's configuration: its own certificate, and the CA of client certificates.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signs client certificates; needed unless `client_certificates` is off.
    pub client_ca: Option<PathBuf>,
    pub client_certificates: ClientCertificates,
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} already exists; refusing to overwrite a CA")]
    Exists { path: String },
    #[error("{path} holds no usable PEM {what}")]
    Pem { path: String, what: &'static str },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("client certificates are asked for but no client CA is configured")]
    NoClientCa,
}

/// The contents of a PEM file of the TLS configuration.
pub fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Writes `contents` to a new file; keys are readable by their owner only.
fn write_new(path: &Path, contents: &str, secret: bool) -> Result<(), CertificateError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |source| CertificateError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => CertificateError::Exists {
                path: path.display().to_string(),
            },
            _ => fail(source),
        })?;
    file.write_all(contents.as_bytes()).map_err(fail)
}

/// The CA's parameters. They are the same at every issue, so the issuer name and key
/// identifier of an issued certificate match the CA certificate.
fn ca_params() -> Result<CertificateParams, CertificateError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "noroshi");
    name.push(DnType::CommonName, "noroshi client CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + time::Duration::days(10 * 365);
    Ok(params)
}

/// Creates a CA in `dir` (`ca.pem`, `ca-key.pem`), refusing to overwrite one.
pub fn init_ca(dir: &Path) -> Result<PathBuf, CertificateError> {
    std::fs::create_dir_all(dir).map_err(|source| CertificateError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    let cert_path = dir.join(CA_CERT);
    write_new(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write_new(&cert_path, &cert.pem(), false)?;
    Ok(cert_path)
}

fn issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertificateError> {
    let path = dir.join(CA_KEY);
    let pem = String::from_utf8(read(&path)?).map_err(|_| CertificateError::Pem {
        path: path.display().to_string(),
        what: "key",
    })?;
    let key = KeyPair::from_pem(&pem).map_err(|_| CertificateError::Pem {
        path: path.display().to_string(),
        what: "key",
    })?;
    Ok(Issuer::new(ca_params()?, key))
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct IssuedPem {
    pub serial: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub fingerprint: Vec<u8>,
    pub subject: String,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for IssuedPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedPem")
            .field("serial", &self.serial)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

fn sign(
    dir: &Path,
    mut params: CertificateParams,
    days: i64,
) -> Result<IssuedPem, CertificateError> {
    let issuer = issuer(dir)?;
    let mut serial = random_bytes::<16>().map_err(|e| CertificateError::Tls(e.to_string()))?;
    // Positive, as DER integers of serial numbers must be.
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    params.not_after = OffsetDateTime::now_utc() + time::Duration::days(days);
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let subject = params
        .distinguished_name
        .iter()
        .map(|(kind, value)| format!("{kind:?}={value:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(IssuedPem {
        serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: digest_bytes(cert.der()),
        subject,
        not_after: params.not_after,
    })
}

/// Issues a server certificate for the TLS listeners, valid for `names` (DNS names or
/// IP addresses).
pub fn issue_server(
    dir: &Path,
    names: &[String],
    days: i64,
) -> Result<IssuedPem, CertificateError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    sign(dir, params, days)
}

/// Issues a client certificate for an organisation of `kind` and registers it, so that
/// it authenticates as that organisation. Recorded as `CERTIFICATE_ISSUED`.
pub async fn issue_client(
    pool: &PgPool,
    dir: &Path,
    actor: &Principal,
    organisation_id: &str,
    kind: FacilityKind,
    days: i64,
) -> Result<IssuedPem, IssueError> {
    let role = Role::of_kind(kind);
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, "noroshi");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, role.as_str());
    params
        .distinguished_name
        .push(DnType::CommonName, organisation_id);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let issued = sign(dir, params, days)?;
    let mut tx = pool.begin().await.map_err(store_failure)?;
    sqlx::query(
        "INSERT INTO client_certificates (fingerprint, serial, organisation_id, role, subject, \
                                          issued_by, not_after) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&issued.fingerprint)
    .bind(&issued.serial)
    .bind(organisation_id)
    .bind(role.as_str())
    .bind(&issued.subject)
    .bind(actor.principal_id.as_str())
    .bind(issued.not_after)
    .execute(&mut *tx)
    .await
    .map_err(store_failure)?;
    audit::record(
        &mut *tx,
        audit::CERTIFICATE_ISSUED,
        actor,
        "admin ca issue",
        None,
        Some(json!({"serial": issued.serial, "organisation_id": organisation_id})),
    )
    .await?;
    tx.commit().await.map_err(store_failure)?;
    Ok(issued)
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("cannot register the certificate: {0}")]
    Register(#[from] IdentityError),
}

impl From<rcgen::Error> for IssueError {
    fn from(error: rcgen::Error) -> Self {
        Self::Certificate(error.into())
    }
}

/// Revokes a registered certificate by serial; it stops authenticating at once.
pub async fn revoke(pool: &PgPool, serial: &str) -> Result<bool, IdentityError> {
    let done = sqlx::query(
        "UPDATE client_certificates SET revoked_at = now() \
         WHERE serial = $1 AND revoked_at IS NULL",
    )
    .bind(serial)
    .execute(pool)
    .await
    .map_err(store_failure)?;
    Ok(done.rows_affected() == 1)
}

/// The organisation a presented certificate (DER) stands for, if it is registered,
/// unexpired and unrevoked.
pub(super) async fn lookup(pool: &PgPool, der: &[u8]) -> Result<Option<Principal>, IdentityError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT serial, organisation_id, role FROM client_certificates \
         WHERE fingerprint = $1 AND revoked_at IS NULL AND not_after > now()",
    )
    .bind(digest_bytes(der))
    .fetch_optional(pool)
    .await
    .map_err(store_failure)?;
    row.map(|(serial, organisation_id, role)| {
        super::principal(format!("cert:{serial}"), &organisation_id, &role)
    })
    .transpose()
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CertificateError::Pem {
            path: path.display().to_string(),
            what: "certificate",
        })?;
    if certs.is_empty() {
        return Err(CertificateError::Pem {
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The rustls configuration of a TLS listener (HTTP). gRPC builds the same from the
/// same files through tonic.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, CertificateError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert)?;
    let key =
        PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|_| CertificateError::Pem {
            path: files.key.display().to_string(),
            what: "private key",
        })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertificateError::Tls(e.to_string()))?;
    let builder = match files.client_certificates {
        ClientCertificates::Off => builder.with_no_client_auth(),
        mode => {
            let ca = files
                .client_ca
                .as_ref()
                .ok_or(CertificateError::NoClientCa)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| CertificateError::Tls(e.to_string()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if mode == ClientCertificates::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| CertificateError::Tls(e.to_string()))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| CertificateError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
