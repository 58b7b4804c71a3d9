//! `[argon2]`, `[passwords]` and `[regulation]`: how passwords are hashed, what a new one
//! must be, and how guessing them is slowed down.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2 {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes allowed at once; each holds `memory_kib` of memory. Default: number of CPUs.
    pub max_concurrent: Option<usize>,
}

/// What a new password must be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Passwords {
    /// Fewest characters.
    pub min_length: usize,
    /// Lowest zxcvbn strength score accepted, 0 (anything) to 4 (very strong).
    pub min_score: u8,
}

/// Brute-force regulation of failed logins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Regulation {
    /// Failed logins per account or per address within `find_time` before a ban; 0: off.
    pub max_retries: u64,
    /// Seconds over which failures are counted.
    pub find_time: u64,
    /// Seconds a ban lasts.
    pub ban_time: u64,
}

impl Default for Argon2 {
    fn default() -> Self {
        Argon2 {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: None,
        }
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords {
            min_length: 8,
            min_score: 3,
        }
    }
}

impl Default for Regulation {
    fn default() -> Self {
        Regulation {
            max_retries: 5,
            find_time: 120,
            ban_time: 300,
        }
    }
}

impl Argon2 {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrent == Some(0) {
            return Err(invalid("argon2.max_concurrent", "must be at least 1"));
        }
        self.params()?;
        Ok(())
    }

    /// The argon2id parameters, validated.
    pub fn params(&self) -> Result<argon2::Params, ConfigError> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| invalid("argon2", &e.to_string()))
    }
}

impl Passwords {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.min_score > 4 {
            return Err(invalid("passwords.min_score", "must be 0 to 4"));
        }
        if self.min_length == 0 || self.min_length > 128 {
            return Err(invalid("passwords.min_length", "must be 1 to 128"));
        }
        Ok(())
    }
}

impl Regulation {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_retries > 0 && (self.find_time == 0 || self.ban_time == 0) {
            return Err(invalid(
                "regulation.find_time / regulation.ban_time",
                "must be positive while regulation is on",
            ));
        }
        Ok(())
    }
}
