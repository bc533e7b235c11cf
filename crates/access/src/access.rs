//! [`Access`]: the identities kept in the data directory's database.

use std::sync::{Arc, OnceLock};

use store::Store;
use store::rusqlite::Connection;

use crate::audit::AuditRecord;
use crate::cache::TokenCache;

use crate::{Error, schema};

/// Users and API tokens, kept in the store's `access_*` tables.
///
/// Cheap to clone. Operations that write return a [`Pending`], which async code awaits
/// and command-line code [`Pending::wait`]s on.
#[derive(Clone)]
pub struct Access {
    pub(crate) store: Store,
    pub(crate) dummy_hash: Arc<OnceLock<String>>,
    /// Tokens verified lately, shared by every clone.
    pub(crate) tokens: Arc<TokenCache>,
}

impl Access {
    /// Creates or upgrades the tables (its own and the audit trail's, which its
    /// changes are recorded in), and returns the handle.
    pub async fn open(store: Store) -> Result<Access, Error> {
        store
            .migrate_component(schema::COMPONENT, schema::MIGRATIONS)
            .await?;
        store
            .migrate_component(crate::audit::COMPONENT, crate::audit::MIGRATIONS)
            .await?;
        Ok(Access::new(store))
    }

    /// [`Access::open`] outside an async runtime.
    pub fn open_blocking(store: Store) -> Result<Access, Error> {
        store
            .migrate_component(schema::COMPONENT, schema::MIGRATIONS)
            .wait()?;
        store
            .migrate_component(crate::audit::COMPONENT, crate::audit::MIGRATIONS)
            .wait()?;
        Ok(Access::new(store))
    }

    /// Runs `change` in one write with its audit record: when the change succeeds the
    /// record is appended in the same transaction, and when the record cannot be
    /// written the change is rolled back with it.
    pub(crate) fn write_audited<T, F>(&self, audit: Option<AuditRecord>, change: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> store::Result<Result<T, Error>> + Send + 'static,
    {
        Pending::write(self.store.write(move |conn| {
            let done = change(conn)?;
            if let (Ok(_), Some(record)) = (&done, &audit) {
                crate::audit::append_in(conn, record)?;
            }
            Ok(done)
        }))
    }

    fn new(store: Store) -> Access {
        Access {
            store,
            dummy_hash: Arc::new(OnceLock::new()),
            tokens: Arc::new(TokenCache::default()),
        }
    }

    /// [`Access::write_audited`] for a change that can end a token's or a session's
    /// right (revoking, disabling, a new password): the cache of verified tokens is
    /// emptied now and again once the change is committed, so no request after the
    /// change is let in by an answer cached before it.
    pub(crate) fn write_audited_revoking<T, F>(
        &self,
        audit: Option<AuditRecord>,
        change: F,
    ) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> store::Result<Result<T, Error>> + Send + 'static,
    {
        self.tokens.invalidate();
        let tokens = Arc::clone(&self.tokens);
        let mut pending = self.write_audited(audit, change);
        pending.after = Some(Box::new(move || tokens.invalidate()));
        pending
    }

    /// How many verified tokens are cached (for tests and diagnostics).
    pub fn cached_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// The store the tables live in.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("store", &self.store)
            .finish()
    }
}

/// A write in progress: await it, or [`Pending::wait`] for it outside a runtime.
#[must_use = "the write happens only if the result is awaited or waited for"]
pub struct Pending<T> {
    inner: PendingInner<T>,
    /// Run once the write resolved, whatever its outcome.
    after: Option<Box<dyn FnOnce() + Send>>,
}

enum PendingInner<T> {
    Ready(Option<Result<T, Error>>),
    Write(store::WriteFuture<Result<T, Error>>),
}

impl<T> Pending<T> {
    pub(crate) fn ready(result: Result<T, Error>) -> Pending<T> {
        Pending {
            inner: PendingInner::Ready(Some(result)),
            after: None,
        }
    }

    pub(crate) fn write(write: store::WriteFuture<Result<T, Error>>) -> Pending<T> {
        Pending {
            inner: PendingInner::Write(write),
            after: None,
        }
    }

    /// Blocks until the write is durable or has failed.
    ///
    /// # Panics
    ///
    /// Panics when called from inside an async runtime; await the value there instead.
    pub fn wait(self) -> Result<T, Error> {
        let done = match self.inner {
            PendingInner::Ready(result) => result.unwrap_or(Err(Error::PolledAgain)),
            PendingInner::Write(write) => write.wait().map_err(Error::from).and_then(|r| r),
        };
        if let Some(after) = self.after {
            after();
        }
        done
    }
}

impl<T> Unpin for Pending<T> {}

impl<T> std::future::Future for Pending<T> {
    type Output = Result<T, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T, Error>> {
        let done = match &mut self.inner {
            PendingInner::Ready(result) => {
                std::task::Poll::Ready(result.take().unwrap_or(Err(Error::PolledAgain)))
            }
            PendingInner::Write(write) => std::pin::Pin::new(write)
                .poll(cx)
                .map(|answer| answer.map_err(Error::from).and_then(|inner| inner)),
        };
        if done.is_ready() {
            if let Some(after) = self.after.take() {
                after();
            }
        }
        done
    }
}
