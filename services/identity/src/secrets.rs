//! Random secrets and their stored digests.
//!
//! Session ids and API tokens are 256 random bits, so a plain SHA-256 is enough to store
//! them: unlike passwords they cannot be guessed, and a fast digest keeps every request's
//! lookup cheap. Passwords get argon2id (see the users module).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::IdentityError;

/// `N` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        IdentityError::internal(std::io::Error::other(format!(
            "the operating system gave no random bytes: {e}"
        )))
    })?;
    Ok(bytes)
}

/// 256 random bits, URL-safe base64 (43 characters).
pub(crate) fn random_token() -> Result<String, IdentityError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// The digest under which a secret is stored and looked up.
pub(crate) fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The digest of raw bytes, e.g. a certificate's DER (its fingerprint).
pub(crate) fn digest_bytes(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}
