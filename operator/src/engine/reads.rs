//! The reads one observe shares between drivers: some AWS answers serve several kinds (the
//! scaling groups serve the groups and their policies, the load balancer serves itself and its
//! listeners, one tagging lookup serves target groups and the alarm topic), and reading them once
//! per observe instead of once per kind is what keeps a steady resync cheap.
//!
//! A [`Reads`] lives for one observe of every kind ([`super::Components::observe`]) and no
//! longer: a later observe (the next pass, a settle look after a create) reads AWS afresh, so
//! nothing here can hide a change. Failed reads are not kept: the next caller reads again.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use super::act::ActError;

type Cell = Arc<OnceCell<Arc<dyn Any + Send + Sync>>>;

/// Answers read once per observe, by a key naming the call and its parameters.
#[derive(Default)]
pub struct Reads {
    cells: Mutex<HashMap<String, Cell>>,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Reads")
            .field("keys", &cells.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Reads {
    /// No reads yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer kept under `key`, or `read`'s answer, kept for the next caller. Callers at the
    /// same time wait for the one read in flight. `key` must say everything the answer depends
    /// on (service, call, parameters), and one key always holds one type.
    pub async fn get_or_read<T, F, Fut>(&self, key: &str, read: F) -> Result<Arc<T>, ActError>
    where
        T: Any + Send + Sync,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ActError>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(cells.entry(key.to_owned()).or_default())
        };
        let value = cell
            .get_or_try_init(|| async {
                read()
                    .await
                    .map(|value| Arc::new(value) as Arc<dyn Any + Send + Sync>)
            })
            .await?;
        Arc::clone(value).downcast::<T>().map_err(|_| {
            ActError::refused(
                "PlinthReadTypeMismatch",
                format!("two readers keep different types under the read key {key:?}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn one_read_serves_every_caller_of_a_key_and_failures_are_not_kept() {
        let reads = Reads::new();
        let calls = AtomicUsize::new(0);
        let read = |value: u32| {
            let calls = &calls;
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ActError>(value)
            }
        };
        let (a, b) = tokio::join!(
            reads.get_or_read("k", read(1)),
            reads.get_or_read("k", read(2))
        );
        assert_eq!((a.map(|v| *v), b.map(|v| *v)), (Ok(1), Ok(1)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(reads.get_or_read("other", read(3)).await.map(|v| *v), Ok(3));
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let failed = reads
            .get_or_read::<u32, _, _>("flaky", || async {
                Err(ActError::retryable("Throttling", "slow down"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(reads.get_or_read("flaky", read(4)).await.map(|v| *v), Ok(4));

        let mismatch = reads
            .get_or_read("k", || async { Ok::<_, ActError>("text") })
            .await;
        assert!(
            matches!(mismatch, Err(ActError::Refused { code, .. }) if code == "PlinthReadTypeMismatch")
        );
    }
}
