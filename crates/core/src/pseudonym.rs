//! Keyed-hash pseudonymisation of customer ids (HMAC-SHA256).
//!
//! The key comes from the `REVSPEND_PSEUDONYM_KEY` environment variable and
//! is never printed. Without it a stage refuses to run unless its caller
//! opted into the public [`DEVELOPMENT_KEY`] explicitly
//! (`build_features.allow_development_key` in params.yaml, `serve
//! --allow-development-key`): pseudonyms made with a public key are easy to
//! reverse for 11-digit ids, so using it is a decision, never a fallback.
//! [`Pseudonymiser::key_fingerprint`] identifies a key without revealing it;
//! the snapshot and the model carry it so the server can tell it was given
//! the wrong key.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

/// Environment variable holding the pseudonymisation key.
pub const KEY_ENV: &str = "REVSPEND_PSEUDONYM_KEY";

/// Development default key: public, so pseudonyms made with it are not secret.
pub const DEVELOPMENT_KEY: &str = "revspend-development-key-not-secret";

/// Why no key could be chosen.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error(
        "REVSPEND_PSEUDONYM_KEY is not set: set it to your secret pseudonymisation key (the same one for \
         build-features and serve; it is never logged), or, for generated or test data only, opt \
         into the public development key with {opt_in}"
    )]
    Missing { opt_in: String },
    #[error(
        "REVSPEND_PSEUDONYM_KEY holds the public development key: set it to a secret key, or opt into the \
         development key explicitly with {opt_in} (generated or test data only)"
    )]
    PublicKeyNotAllowed { opt_in: String },
}

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

    /// Keyed with the public [`DEVELOPMENT_KEY`].
    pub fn development() -> Self {
        Self::new(DEVELOPMENT_KEY.as_bytes())
    }

    /// Keyed from [`KEY_ENV`]; see [`Pseudonymiser::from_setting`].
    pub fn from_env(allow_development_key: bool, opt_in: &str) -> Result<Self, KeyError> {
        let value = std::env::var(KEY_ENV).ok();
        Self::from_setting(value.as_deref(), allow_development_key, opt_in)
    }

    /// Keyed from the value of [`KEY_ENV`] (`None` or empty: unset). An
    /// unset key, or one equal to the public development key, is an error
    /// unless `allow_development_key`, which then uses the development key
    /// with a warning. `opt_in` tells the user how to allow it (the flag or
    /// param of the calling stage) in the error.
    pub fn from_setting(
        value: Option<&str>,
        allow_development_key: bool,
        opt_in: &str,
    ) -> Result<Self, KeyError> {
        let key = value.filter(|k| !k.is_empty());
        let pseudonymiser = match key {
            Some(k) => Self::new(k.as_bytes()),
            None if allow_development_key => Self::development(),
            None => {
                return Err(KeyError::Missing {
                    opt_in: opt_in.to_owned(),
                });
            }
        };
        if pseudonymiser.development_key {
            if !allow_development_key {
                return Err(KeyError::PublicKeyNotAllowed {
                    opt_in: opt_in.to_owned(),
                });
            }
            log::warn!(
                "pseudonymising with the public development key (opted in with {opt_in}): \
                 its pseudonyms are not secret; set {KEY_ENV} to a secret key for real data"
            );
        }
        Ok(pseudonymiser)
    }

    /// Whether this uses the public development key.
    pub fn is_development_key(&self) -> bool {
        self.development_key
    }

    /// Which key this is, for reports and logs: `development default` or
    /// `from environment`.
    pub fn key_source(&self) -> &'static str {
        if self.development_key {
            "development default"
        } else {
            "from environment"
        }
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

/// How a stored key fingerprint reads to a person: `the public development
/// key` when it is that key's, else `a secret key`.
pub fn describe_fingerprint(fingerprint: &str) -> &'static str {
    if fingerprint == Pseudonymiser::development().key_fingerprint() {
        "the public development key"
    } else {
        "a secret key"
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

    /// Issue 12 item 10: without a key and without the explicit opt-in the
    /// public development key is refused, with a message saying how to set
    /// a key or opt in; with the opt-in it is used and recorded as such.
    #[test]
    fn the_development_key_is_used_only_when_opted_into() {
        let opt_in = "build_features.allow_development_key: true";
        for unset in [None, Some("")] {
            let err = Pseudonymiser::from_setting(unset, false, opt_in).expect_err("no key");
            let message = err.to_string();
            assert!(message.contains(KEY_ENV) && message.contains(opt_in), "{message}");
            let dev = Pseudonymiser::from_setting(unset, true, opt_in).expect("opted in");
            assert!(dev.is_development_key());
            // Documented in the README, so people can recognise it.
            assert_eq!(dev.key_fingerprint(), "9c8d0d8f126a77834d58e63874187ef0");
            assert_eq!(dev.key_source(), "development default");
            assert_eq!(
                describe_fingerprint(&dev.key_fingerprint()),
                "the public development key"
            );
        }
        let err = Pseudonymiser::from_setting(Some(DEVELOPMENT_KEY), false, opt_in)
            .expect_err("the public key spelled out");
        assert!(matches!(err, KeyError::PublicKeyNotAllowed { .. }), "{err}");

        // A key from the environment wins over the opt-in.
        let secret = Pseudonymiser::from_setting(Some("s3cret"), true, opt_in).expect("key");
        assert!(!secret.is_development_key());
        assert_eq!(secret.key_source(), "from environment");
        assert_eq!(
            secret.key_fingerprint(),
            Pseudonymiser::new(b"s3cret").key_fingerprint()
        );
        assert_eq!(describe_fingerprint(&secret.key_fingerprint()), "a secret key");
        assert!(Pseudonymiser::from_setting(Some("s3cret"), false, opt_in).is_ok());
    }
}
