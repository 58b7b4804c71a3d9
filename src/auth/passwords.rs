//! Password hashing with argon2id, off the async threads.
//!
//! Hashes run on `argon2.max_concurrent` dedicated threads, each reusing one block buffer
//! while there is work and giving it back after [`RELEASE_AFTER`] without any: tokio's
//! blocking pool would let up to 512 threads each keep a 19 MiB buffer (and a glibc malloc
//! arena) alive after a login flood. The threads run at a lower priority so that token
//! checks on the async threads keep their latency while logins saturate the CPUs. The queue
//! in front of them is bounded: when it is full, callers get [`HashError::Busy`] at once
//! (503 with `Retry-After`) instead of waiting without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password hashes are queued")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
    /// The password policy refused the new password (the reason, for the person).
    #[error("{0}")]
    Rejected(String),
}

/// A password policy run on the hashing threads before a new password is hashed.
pub(crate) type Policy = Box<dyn FnOnce(&str) -> Result<(), String> + Send>;

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash uses other parameters than the configured ones.
    pub needs_rehash: bool,
}

enum Work {
    Hash {
        password: String,
        policy: Option<Policy>,
        reply: oneshot::Sender<Result<String, HashError>>,
    },
    Verify {
        password: Vec<u8>,
        phc: String,
        reply: oneshot::Sender<Result<Verification, HashError>>,
    },
}

struct Job {
    work: Work,
    /// When it was queued, for the wait-time histogram.
    queued_at: Instant,
}

pub struct Hasher {
    jobs: SyncSender<Job>,
    /// How many hashing threads hold a block buffer now (the workers count through their
    /// own handles; the tests read it here).
    #[cfg_attr(not(test), allow(dead_code))]
    buffers: Arc<AtomicUsize>,
    /// A hash of no password, with the configured parameters: checking against it costs what
    /// checking a real hash costs, so an unknown email takes as long as a wrong password.
    dummy: String,
}

impl Hasher {
    /// Starts `threads` hashing threads with a queue of `queue` waiting jobs.
    pub fn start(params: Params, threads: usize, queue: usize) -> Result<Self, HashError> {
        map_large_allocations();
        let (jobs, rx) = mpsc::sync_channel(queue);
        let rx = Arc::new(Mutex::new(rx));
        let buffers = Arc::new(AtomicUsize::new(0));
        // Present from the first scrape, before the first hash.
        metrics::gauge!("gatehouse_argon2_queue_depth").set(0.0);
        let _ = metrics::histogram!("gatehouse_argon2_wait_seconds");
        for i in 0..threads {
            let rx = rx.clone();
            let params = params.clone();
            let buffers = buffers.clone();
            std::thread::Builder::new()
                .name(format!("gatehouse-argon2-{i}"))
                .spawn(move || worker(&rx, &params, &buffers))
                .map_err(|e| HashError::Failed(format!("cannot start hashing thread: {e}")))?;
        }
        let dummy = dummy_hash(&params)?;
        Ok(Hasher {
            jobs,
            buffers,
            dummy,
        })
    }

    /// Hashes a password with the configured parameters.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        self.hash_with_policy(password, None).await
    }

    /// Checks a new password against `policy`, then hashes it; both on the hashing threads,
    /// since a strength estimate of a long password is CPU work too.
    pub async fn hash_new(&self, password: &str, policy: Policy) -> Result<String, HashError> {
        self.hash_with_policy(password, Some(policy)).await
    }

    async fn hash_with_policy(
        &self,
        password: &str,
        policy: Option<Policy>,
    ) -> Result<String, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Work::Hash {
            password: password.to_owned(),
            policy,
            reply,
        })?;
        rx.await
            .unwrap_or_else(|_| Err(HashError::Failed("hashing thread stopped".into())))
    }

    /// Checks `password` against `phc`, or against the dummy hash when there is no user, so
    /// that both cases cost the same.
    pub async fn verify(
        &self,
        password: &str,
        phc: Option<&str>,
    ) -> Result<Verification, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Work::Verify {
            password: password.as_bytes().to_vec(),
            phc: phc.unwrap_or(&self.dummy).to_owned(),
            reply,
        })?;
        let verification = rx
            .await
            .unwrap_or_else(|_| Err(HashError::Failed("hashing thread stopped".into())))?;
        Ok(Verification {
            matches: verification.matches && phc.is_some(),
            ..verification
        })
    }

    fn submit(&self, work: Work) -> Result<(), HashError> {
        let job = Job {
            work,
            queued_at: Instant::now(),
        };
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => HashError::Busy,
            TrySendError::Disconnected(_) => HashError::Failed("no hashing threads".into()),
        })?;
        metrics::gauge!("gatehouse_argon2_queue_depth").increment(1.0);
        Ok(())
    }
}

/// How long a hashing thread keeps its block buffer without work: long enough that a burst
/// of logins reuses it, short enough that it is back with the system soon after.
const RELEASE_AFTER: Duration = Duration::from_secs(2);
/// After waiting that long in vain, a thread leaves the queue to the others for this long:
/// the threads share one receiver behind a mutex, and one that waits there holding no
/// buffer must not keep another, still holding one, from its own timeout.
const HAND_OVER: Duration = Duration::from_millis(10);

fn worker(rx: &Mutex<Receiver<Job>>, params: &Params, buffers: &AtomicUsize) {
    lower_priority();
    // Allocated on the first job (by `blocks_for`), not at start: an idle server holds no
    // hashing memory.
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.recv_timeout(RELEASE_AFTER)
        };
        let job = match job {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                // Idle: give the buffer (19 MiB with the default parameters) back, so that
                // a server no one logs in to holds no hashing memory after a flood.
                if !blocks.is_empty() {
                    blocks = Vec::new();
                    buffers.fetch_sub(1, Ordering::Relaxed);
                }
                std::thread::sleep(HAND_OVER);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        metrics::gauge!("gatehouse_argon2_queue_depth").decrement(1.0);
        metrics::histogram!("gatehouse_argon2_wait_seconds")
            .record(job.queued_at.elapsed().as_secs_f64());
        let had_buffer = !blocks.is_empty();
        // A request that timed out or whose client left no longer waits for the answer:
        // skip its work, so a flood does not keep the threads busy after it is over.
        match job.work {
            Work::Hash { reply, .. } if reply.is_closed() => {}
            Work::Verify { reply, .. } if reply.is_closed() => {}
            Work::Hash {
                password,
                policy,
                reply,
            } => {
                let result = match policy.map_or(Ok(()), |check| check(&password)) {
                    Ok(()) => hash_with(password.as_bytes(), params, &mut blocks),
                    Err(why) => Err(HashError::Rejected(why)),
                };
                let _ = reply.send(result);
            }
            Work::Verify {
                password,
                phc,
                reply,
            } => {
                let _ = reply.send(verify_with(&password, &phc, params, &mut blocks));
            }
        }
        if !had_buffer && !blocks.is_empty() {
            buffers.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The size from which glibc serves an allocation by `mmap` of its own: 4 MiB, so that a
/// block buffer (19 MiB with the default parameters) is always one, returned whole to the
/// kernel when it is freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_FROM: libc::c_int = 4 << 20;

/// Makes every block buffer its own mapping. Left to itself, glibc raises its mmap threshold
/// to the size of the first large block it frees (up to 32 MiB), so later buffers come from
/// a malloc heap, where a freed buffer stays resident whenever anything was allocated above
/// it: after a login flood and the token checks around it, both threads' freed buffers
/// (38 MiB) stayed resident for good (measured; with the fixed threshold the RSS fell from
/// 62.5 to 24.5 MiB 5 s after the flood). Setting the threshold also turns that dynamic
/// raise off. Other platforms' allocators (musl, macOS) map large blocks themselves.
// libc has no safe wrapper for mallopt.
#[allow(unsafe_code)]
fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter of glibc's allocator; it takes the
    // allocator's own lock and may be called at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM);
    }
}

/// Lets the async threads win the CPU over hashing (Linux: per-thread nice value).
// libc has no safe wrapper for a per-thread nice value.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's id only changes its scheduling priority.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn blocks_for<'b>(blocks: &'b mut Vec<Block>, params: &Params) -> &'b mut [Block] {
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    &mut blocks[..needed]
}

/// Hashes one secret on the calling thread (the CLI's `client secret`; never on a request).
pub(crate) fn hash_once(secret: &str, params: &Params) -> Result<String, HashError> {
    hash_with(secret.as_bytes(), params, &mut Vec::new())
}

fn hash_with(
    password: &[u8],
    params: &Params,
    blocks: &mut Vec<Block>,
) -> Result<String, HashError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| HashError::Failed(e.to_string()))?;
    let mut out = [0u8; OUTPUT_LEN];
    argon2(params)
        .hash_password_into_with_memory(password, &salt, &mut out, blocks_for(blocks, params))
        .map_err(|e| HashError::Failed(e.to_string()))?;
    phc_string(params, &salt, &out)
}

fn phc_string(params: &Params, salt: &[u8], out: &[u8]) -> Result<String, HashError> {
    let fail = |e: argon2::password_hash::phc::Error| HashError::Failed(e.to_string());
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.into(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| HashError::Failed(e.to_string()))?,
        salt: Some(Salt::new(salt).map_err(fail)?),
        hash: Some(Output::new(out).map_err(fail)?),
    };
    Ok(hash.to_string())
}

fn verify_with(
    password: &[u8],
    phc: &str,
    configured: &Params,
    blocks: &mut Vec<Block>,
) -> Result<Verification, HashError> {
    let corrupt = |what: &str| HashError::Failed(format!("stored password hash: {what}"));
    let hash = PasswordHash::new(phc).map_err(|e| corrupt(&e.to_string()))?;
    let algorithm =
        Algorithm::try_from(hash.algorithm.as_str()).map_err(|e| corrupt(&e.to_string()))?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).map_err(|e| corrupt(&e.to_string()))?,
        None => Version::V0x13,
    };
    let params = Params::try_from(&hash).map_err(|e| corrupt(&e.to_string()))?;
    let salt = hash.salt.ok_or_else(|| corrupt("no salt"))?;
    let expected = hash.hash.ok_or_else(|| corrupt("no output"))?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            blocks_for(blocks, &params),
        )
        .map_err(|e| HashError::Failed(e.to_string()))?;
    let matches = bool::from(out.as_slice().ct_eq(expected.as_bytes()));
    let needs_rehash = algorithm != Algorithm::Argon2id
        || version != Version::V0x13
        || params.m_cost() != configured.m_cost()
        || params.t_cost() != configured.t_cost()
        || params.p_cost() != configured.p_cost();
    Ok(Verification {
        matches,
        needs_rehash,
    })
}

/// A well-formed hash with the configured parameters and random salt and output: verifying
/// against it runs the full argon2 work and never matches.
fn dummy_hash(params: &Params) -> Result<String, HashError> {
    let mut bytes = [0u8; SALT_LEN + OUTPUT_LEN];
    getrandom::fill(&mut bytes).map_err(|e| HashError::Failed(e.to_string()))?;
    phc_string(params, &bytes[..SALT_LEN], &bytes[SALT_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Params {
        Params::new(64, 1, 1, None).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = Hasher::start(cheap(), 1, 4).unwrap();
        let phc = hasher.hash("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        let ok = hasher.verify("correct horse", Some(&phc)).await.unwrap();
        assert!(ok.matches && !ok.needs_rehash);
        let bad = hasher.verify("wrong horse", Some(&phc)).await.unwrap();
        assert!(!bad.matches);
        let none = hasher.verify("", None).await.unwrap();
        assert!(!none.matches);
    }

    /// A block buffer is a mapping of its own, gone from the address space once freed, even
    /// after a larger block was freed first (which raises glibc's own threshold to its size).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn large_buffers_are_unmapped_when_freed() {
        map_large_allocations();
        drop(vec![7u8; 16 << 20]);
        const SIZE: usize = 8 << 20;
        // Whether `at` lies in a mapping of the buffer's size (plus glibc's header page),
        // not in a malloc heap (64 MiB regions) or anything else.
        let own_mapping = |at: usize| {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            maps.lines().any(|line| {
                let range = line.split(' ').next().unwrap_or("");
                let (start, end) = range.split_once('-').unwrap();
                let start = usize::from_str_radix(start, 16).unwrap();
                let end = usize::from_str_radix(end, 16).unwrap();
                (start..end).contains(&at) && (SIZE..SIZE + (64 << 10)).contains(&(end - start))
            })
        };
        let buffer = vec![1u8; SIZE];
        let at = buffer.as_ptr() as usize;
        assert!(own_mapping(at), "an 8 MiB buffer is its own mapping");
        drop(buffer);
        assert!(!own_mapping(at), "and unmapped once freed");
    }

    #[tokio::test]
    async fn idle_threads_give_their_buffers_back() {
        let hasher = Arc::new(Hasher::start(cheap(), 2, 16).unwrap());
        let jobs: Vec<_> = (0..8)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&format!("pw {i}")).await })
            })
            .collect();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert!(hasher.buffers.load(Ordering::Relaxed) >= 1);
        // Both threads, including one that waited for the queue behind the other.
        let deadline = Instant::now() + RELEASE_AFTER * 4;
        while hasher.buffers.load(Ordering::Relaxed) > 0 {
            assert!(
                Instant::now() < deadline,
                "a hashing thread kept its buffer"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // And a later login still hashes.
        assert!(hasher.hash("again").await.is_ok());
    }

    #[tokio::test]
    async fn other_parameters_ask_for_rehash() {
        let old = Hasher::start(Params::new(128, 1, 1, None).unwrap(), 1, 4).unwrap();
        let phc = old.hash("pw").await.unwrap();
        let new = Hasher::start(cheap(), 1, 4).unwrap();
        let v = new.verify("pw", Some(&phc)).await.unwrap();
        assert!(v.matches && v.needs_rehash);
    }
}
