//! Locks that a panic cannot break: the state behind them stays usable for every later call.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

// A panic while a std lock is held marks it poisoned, and `.lock().expect(..)` would then panic
// in every later call: one bug would take the whole client down. The state behind the crate's
// locks (token maps, limiter windows) changes in single inserts and removals, so a panic
// cannot leave it half-updated, and taking the guard of a poisoned lock is safe.

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `lock`, poisoned or not.
pub(crate) fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `lock`, poisoned or not.
pub(crate) fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_locked_leaves_the_state_usable() {
        let mutex = Mutex::new(vec![1]);
        let rw = RwLock::new(vec![1]);
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let _held = mutex.lock().unwrap();
                    let _written = rw.write().unwrap();
                    panic!("a bug while holding both");
                })
                .join();
        });
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        lock(&mutex).push(2);
        write(&rw).push(2);
        assert_eq!((&*lock(&mutex), &*read(&rw)), (&vec![1, 2], &vec![1, 2]));
    }
}
