//! `[argon2]`, `[passwords]` and `[regulation]`: how passwords are hashed, what a new one
//! must be, and how guessing them is slowed down.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// `[argon2]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawArgon2 {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    /// Unset: the number of CPUs.
    max_concurrent: Option<usize>,
}

/// `[argon2]`, validated.
#[derive(Debug, Clone)]
pub struct Argon2 {
    /// argon2id memory (KiB), iterations and lanes.
    pub params: argon2::Params,
    /// Hashes allowed at once (at least 1); each holds `params.m_cost()` KiB of memory.
    pub max_concurrent: usize,
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

impl Default for RawArgon2 {
    fn default() -> Self {
        RawArgon2 {
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

impl RawArgon2 {
    pub(super) fn validate(&self) -> Result<Argon2, ConfigError> {
        if self.max_concurrent == Some(0) {
            return Err(invalid("argon2.max_concurrent", "must be at least 1"));
        }
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| invalid("argon2", &e.to_string()))?;
        let max_concurrent = self.max_concurrent.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        Ok(Argon2 {
            params,
            max_concurrent,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_parameters_are_checked_once() {
        let raw = RawArgon2 {
            memory_kib: 64,
            iterations: 1,
            parallelism: 2,
            max_concurrent: Some(3),
        };
        let argon2 = raw.validate().unwrap();
        let p = &argon2.params;
        assert_eq!((p.m_cost(), p.t_cost(), p.p_cost()), (64, 1, 2));
        assert_eq!(argon2.max_concurrent, 3);
        // Unset: one per CPU.
        let argon2 = RawArgon2::default().validate().unwrap();
        assert!(argon2.max_concurrent >= 1);
        assert_eq!(argon2.params.m_cost(), 19_456);
        // Fewer than 8 KiB per lane is refused by argon2 itself.
        let err = RawArgon2 {
            memory_kib: 8,
            ..raw
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid value for `argon2`:"),
            "{err}"
        );
    }
}
