//! uWSGI's user locks (`uwsgi.lock(n)`, `uwsgi.unlock(n)`,
//! `uwsgi.is_locked(n)`): lock 0 plus the `locks` option's count, shared by
//! the prototype and every worker it forks.
//!
//! Each lock is a `pthread_mutex_t` in one anonymous shared mapping made by
//! the prototype before it imports the app, so workers inherit it. As in
//! uWSGI (`core/lock.c`, `uwsgi_lock_fast`), the mutexes are process-shared
//! and *robust*: a worker that dies holding a lock (a crash, harakiri) does
//! not leave the others waiting forever; the next one to lock takes it over.
//! They are also error-checking, so a thread that locks twice gets an error
//! instead of hanging.

use std::io;
use std::sync::OnceLock;

/// The shared mutexes.
#[derive(Debug)]
struct Locks {
    base: *mut libc::pthread_mutex_t,
    count: usize,
}

// SAFETY: the mapping is never unmapped and pthread mutexes are made to be
// used from any thread (and, being process-shared, any process).
unsafe impl Send for Locks {}
// SAFETY: as above; every access goes through the pthread functions.
unsafe impl Sync for Locks {}

static LOCKS: OnceLock<Locks> = OnceLock::new();

/// Why a lock call failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// No such lock (uWSGI's message).
    #[error("Invalid lock number")]
    Invalid,
    /// The locks were not set up (the prototype could not map them).
    #[error("user locks are not available in this process")]
    Unavailable,
    /// The mutex refused: relocking one's own lock, unlocking another's.
    #[error("lock {0}: {1}")]
    Refused(usize, io::Error),
}

/// A shared anonymous mapping of `size` bytes (zeroed), never unmapped.
pub(crate) fn shared_mapping(size: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous shared mapping of `size` bytes; the result is
    // checked against MAP_FAILED before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size.max(1),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(base.cast())
}

/// Initialises a robust, process-shared, error-checking mutex at `m`.
///
/// # Safety
/// `m` must point to writable memory of a `pthread_mutex_t`, aligned, that
/// no process uses yet.
pub(crate) unsafe fn init_mutex(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: the attribute object is initialised before it is set and
    // destroyed after the last use; `m` is as the caller promises.
    unsafe {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
        let attr = attr.as_mut_ptr();
        let set = check(libc::pthread_mutexattr_setpshared(
            attr,
            libc::PTHREAD_PROCESS_SHARED,
        ))
        .and_then(|()| {
            check(libc::pthread_mutexattr_setrobust(
                attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))
        })
        .and_then(|()| {
            check(libc::pthread_mutexattr_settype(
                attr,
                libc::PTHREAD_MUTEX_ERRORCHECK,
            ))
        })
        .and_then(|()| check(libc::pthread_mutex_init(m, attr)));
        libc::pthread_mutexattr_destroy(attr);
        set
    }
}

/// Takes the mutex at `m`, waiting as long as it takes (call it without
/// the GIL). A holder that died leaves it to us: then `true`, and what it
/// guarded may be half-updated.
///
/// # Safety
/// `m` must be a mutex made by [`init_mutex`], in memory that stays mapped.
pub(crate) unsafe fn lock_mutex(m: *mut libc::pthread_mutex_t) -> io::Result<bool> {
    // SAFETY: as the caller promises.
    match unsafe { libc::pthread_mutex_lock(m) } {
        0 => Ok(false),
        libc::EOWNERDEAD => {
            // The holder died: the lock is ours now; what it guarded is the
            // caller's to check, as with uWSGI.
            // SAFETY: we hold `m` after EOWNERDEAD, as the call requires.
            unsafe { libc::pthread_mutex_consistent(m) };
            Ok(true)
        }
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Releases the mutex at `m`, which this thread must hold.
///
/// # Safety
/// As for [`lock_mutex`].
pub(crate) unsafe fn unlock_mutex(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: as the caller promises; an error-checking mutex reports EPERM
    // when this thread does not hold it.
    check(unsafe { libc::pthread_mutex_unlock(m) })
}

/// Maps lock 0 and `extra` more. Called once, in the prototype before the
/// app is imported; later calls keep the first mapping.
pub fn init(extra: u32) -> io::Result<()> {
    if LOCKS.get().is_some() {
        return Ok(());
    }
    let count = extra as usize + 1;
    let base = shared_mapping(count * std::mem::size_of::<libc::pthread_mutex_t>())?;
    let base = base.cast::<libc::pthread_mutex_t>();
    for i in 0..count {
        // SAFETY: each mutex lies inside the fresh, page-aligned mapping
        // (`i < count`) and is initialised once, before any other process
        // exists that could use it.
        unsafe { init_mutex(base.add(i))? };
    }
    let _ = LOCKS.set(Locks { base, count });
    Ok(())
}

fn check(rc: libc::c_int) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

fn mutex(n: i64) -> Result<*mut libc::pthread_mutex_t, LockError> {
    let locks = LOCKS.get().ok_or(LockError::Unavailable)?;
    let i = usize::try_from(n).map_err(|_| LockError::Invalid)?;
    if i >= locks.count {
        return Err(LockError::Invalid);
    }
    // SAFETY: `i < count`, inside the mapping.
    Ok(unsafe { locks.base.add(i) })
}

/// Takes lock `n`, waiting as long as it takes. Call it without the GIL.
pub fn lock(n: i64) -> Result<(), LockError> {
    let m = mutex(n)?;
    // SAFETY: `m` is an initialised mutex in the shared mapping.
    unsafe { lock_mutex(m) }
        .map(|_| ())
        .map_err(|e| LockError::Refused(n as usize, e))
}

/// Releases lock `n`, which this thread must hold.
pub fn unlock(n: i64) -> Result<(), LockError> {
    let m = mutex(n)?;
    // SAFETY: `m` is an initialised mutex in the shared mapping.
    unsafe { unlock_mutex(m) }.map_err(|e| LockError::Refused(n as usize, e))
}

/// Whether lock `n` is held (by anyone, this thread included).
pub fn is_locked(n: i64) -> Result<bool, LockError> {
    let m = mutex(n)?;
    // SAFETY: `m` is an initialised mutex; a successful try is undone at
    // once.
    match unsafe { libc::pthread_mutex_trylock(m) } {
        0 => {
            // SAFETY: we just took it.
            unsafe { libc::pthread_mutex_unlock(m) };
            Ok(false)
        }
        libc::EOWNERDEAD => {
            // SAFETY: we hold it after EOWNERDEAD; make it usable and let go.
            unsafe {
                libc::pthread_mutex_consistent(m);
                libc::pthread_mutex_unlock(m);
            }
            Ok(false)
        }
        libc::EBUSY | libc::EDEADLK => Ok(true),
        e => Err(LockError::Refused(
            n as usize,
            io::Error::from_raw_os_error(e),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_exclude_threads_and_check_their_numbers() {
        init(2).unwrap();
        assert!(matches!(lock(3), Err(LockError::Invalid)));
        assert!(matches!(lock(-1), Err(LockError::Invalid)));
        assert!(!is_locked(2).unwrap());
        lock(2).unwrap();
        assert!(is_locked(2).unwrap());
        // Locking twice is an error, not a hang.
        assert!(matches!(lock(2), Err(LockError::Refused(2, _))));
        let other = std::thread::spawn(|| {
            // Another thread cannot release it, and sees it held.
            assert!(unlock(2).is_err());
            is_locked(2).unwrap()
        });
        assert!(other.join().unwrap());
        unlock(2).unwrap();
        assert!(!is_locked(2).unwrap());
        assert!(unlock(2).is_err());
    }

    #[test]
    fn a_lock_whose_holder_died_is_taken_over() {
        init(2).unwrap();
        // A thread that ends holding a robust mutex counts as a dead owner.
        std::thread::spawn(|| lock(1).unwrap()).join().unwrap();
        lock(1).unwrap();
        unlock(1).unwrap();
        assert!(!is_locked(1).unwrap());
    }
}
