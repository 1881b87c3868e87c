//! Keyed-hash pseudonymisation of customer ids (HMAC-SHA256).
//!
//! The key comes from the `REVSPEND_PSEUDONYM_KEY` environment variable. The
//! documented development default lets the pipeline run out of the box and
//! logs a warning; a bank sets its own secret. The key is never printed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Environment variable holding the pseudonymisation key.
pub const KEY_ENV: &str = "REVSPEND_PSEUDONYM_KEY";

/// Development default key: public, so pseudonyms made with it are not secret.
pub const DEVELOPMENT_KEY: &str = "revspend-development-key-not-secret";

/// Maps customer ids to stable pseudonyms under one key.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
    development_key: bool,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pseudonymiser")
            .field("key", &"<redacted>")
            .field("development_key", &self.development_key)
            .finish()
    }
}

impl Pseudonymiser {
    /// A pseudonymiser keyed with `key`.
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self {
            mac,
            development_key: key == DEVELOPMENT_KEY.as_bytes(),
        }
    }

    /// Keyed from [`KEY_ENV`], or the development default with a warning.
    pub fn from_env() -> Self {
        match std::env::var(KEY_ENV) {
            Ok(key) if !key.is_empty() => Self::new(key.as_bytes()),
            _ => {
                log::warn!(
                    "{KEY_ENV} is not set: pseudonymising with the public development key; \
                     set it to a secret for real data"
                );
                Self::new(DEVELOPMENT_KEY.as_bytes())
            }
        }
    }

    /// Whether this uses the public development key.
    pub fn is_development_key(&self) -> bool {
        self.development_key
    }

    /// Identifies the key without revealing it: the pseudonym of a string
    /// no customer id can be (ids are digits). Stored with pseudonymised
    /// data so a run with another key knows that data is not its own.
    pub fn key_fingerprint(&self) -> String {
        self.pseudonym("revspend:key-fingerprint")
    }

    /// The pseudonym of a customer id: 128 bits of HMAC-SHA256, in hex.
    pub fn pseudonym(&self, id: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        crate::hex(&tag[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_distinct() {
        let a = Pseudonymiser::new(b"key-a");
        let b = Pseudonymiser::new(b"key-b");
        assert_eq!(a.pseudonym("123"), a.pseudonym("123"));
        assert_ne!(a.pseudonym("123"), a.pseudonym("124"));
        assert_ne!(a.pseudonym("123"), b.pseudonym("123"));
        assert_eq!(a.pseudonym("123").len(), 32);
        assert!(!format!("{a:?}").contains("key-a"));
        assert_ne!(a.key_fingerprint(), b.key_fingerprint());
        assert_eq!(
            a.key_fingerprint(),
            Pseudonymiser::new(b"key-a").key_fingerprint()
        );
    }
}
