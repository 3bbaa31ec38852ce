//! Development tokens: bearer tokens from a TOML file, each mapped to
//! `(principal_id, organisation_id, role)`. `serve` refuses such a file unless it is
//! explicitly allowed (`noroshi dev` and the tests); real deployments use logins, API
//! clients and client certificates (the rest of this crate).
//!
//! ```toml
//! [[token]]
//! token = "…at least 16 characters…"
//! principal_id = "hq-duty-1"
//! organisation_id = "yamaguchi-hq"
//! role = "HQ"
//! ```

use std::collections::HashMap;
use std::path::Path;

use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, PrincipalId};
use serde::Deserialize;

/// Shortest token accepted: shorter ones are guessable.
const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub token: String,
    pub principal_id: String,
    pub organisation_id: String,
    pub role: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read token file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid token file: {0}")]
    Parse(String),
    #[error("token {index}: {reason}")]
    Entry { index: usize, reason: String },
}

/// Bearer tokens and the principals they stand for.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    by_token: HashMap<String, Principal>,
}

impl Tokens {
    pub fn from_entries(entries: &[TokenEntry]) -> Result<Self, TokenFileError> {
        let mut by_token = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let fail = |reason: String| TokenFileError::Entry { index, reason };
            if entry.token.len() < MIN_TOKEN_LEN
                || !entry.token.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(fail(format!(
                    "token must be at least {MIN_TOKEN_LEN} printable ASCII characters"
                )));
            }
            let principal = Principal {
                principal_id: PrincipalId::parse(&entry.principal_id)
                    .map_err(|e| fail(format!("principal_id {e}")))?,
                organisation_id: FacilityId::parse(&entry.organisation_id)
                    .map_err(|e| fail(format!("organisation_id {e}")))?,
                role: Role::parse(&entry.role)
                    .ok_or_else(|| fail(format!("unknown role {:?}", entry.role)))?,
            };
            if by_token.insert(entry.token.clone(), principal).is_some() {
                return Err(fail("token is listed twice".into()));
            }
        }
        Ok(Self { by_token })
    }

    /// Reads the `[[token]]` entries of a TOML file (other tables are ignored, so the
    /// admin file that registers facilities can hold the tokens too).
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TokenFileError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            token: Vec<TokenEntry>,
        }
        let file: File =
            toml::from_str(text).map_err(|e| TokenFileError::Parse(e.message().to_owned()))?;
        Self::from_entries(&file.token)
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// The principal of a bearer token of the file.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        self.by_token.get(token).cloned()
    }
}
