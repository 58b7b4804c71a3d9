//! `[argon2]`, `[passwords]` and `[regulation]`: how passwords are hashed, what a new one
//! must be, and how guessing them is slowed down.

use serde::{Deserialize, Serialize};

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
