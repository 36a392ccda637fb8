//! Asynchronous report data: `POST …/reports/{id}/data/query` answers 202 with a token when a
//! query takes time (`report_query_ms`), `GET data-queries/{token}` answers 202 until it is
//! ready and then the data, `DELETE data-queries/{token}` cancels it.
//!
//! Pages of a finished query are read from the same token (`?page=&pageSize=`), so a run costs
//! one slot of the per-report limit however many pages it has. (The public documentation says
//! nothing on paging a query's result; this is the sandbox's reading.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::reports::Report;
use crate::util::mix_all;

/// Counters of `GET /__sandbox/stats` under `report_queries`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReportQueryStats {
    /// Queries answered 202 with a token.
    pub started: u64,
    /// Polls answered 202 (not ready yet).
    pub pending_polls: u64,
    /// Polls answered with data.
    pub completed_polls: u64,
    /// Queries cancelled with DELETE.
    pub deleted: u64,
}

pub(crate) struct Query {
    pub tenant: i64,
    pub report: &'static Report,
    pub page: i64,
    pub page_size: i64,
    pub include_total: bool,
    pub ready_at: Instant,
    deleted: bool,
}

pub(crate) enum Poll<'a> {
    Missing,
    Deleted,
    Pending,
    Ready(&'a Query),
}

pub(crate) struct ReportQueries {
    nonce: u64,
    next: AtomicU64,
    queries: Mutex<HashMap<String, Query>>,
    stats: Mutex<ReportQueryStats>,
}

impl ReportQueries {
    pub(crate) fn new(nonce: u64) -> Self {
        ReportQueries {
            nonce,
            next: AtomicU64::new(0),
            queries: Mutex::new(HashMap::new()),
            stats: Mutex::new(ReportQueryStats::default()),
        }
    }

    /// Registers a query that will be ready after `takes`; returns its token.
    pub(crate) fn start(
        &self,
        tenant: i64,
        report: &'static Report,
        (page, page_size, include_total): (i64, i64, bool),
        takes: Duration,
    ) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let token = format!("q{:016x}{:08x}", mix_all(&[self.nonce, n, 7]), n);
        let query =
            Query { tenant, report, page, page_size, include_total, ready_at: Instant::now() + takes, deleted: false };
        self.queries.lock().unwrap().insert(token.clone(), query);
        self.stats.lock().unwrap().started += 1;
        token
    }

    /// Runs `f` on the state of `token` for `tenant` (a token of another tenant is missing).
    pub(crate) fn poll<T>(&self, tenant: i64, token: &str, f: impl FnOnce(Poll<'_>) -> T) -> T {
        let queries = self.queries.lock().unwrap();
        let state = match queries.get(token) {
            Some(q) if q.tenant != tenant => Poll::Missing,
            None => Poll::Missing,
            Some(q) if q.deleted => Poll::Deleted,
            Some(q) if Instant::now() < q.ready_at => Poll::Pending,
            Some(q) => Poll::Ready(q),
        };
        {
            let mut stats = self.stats.lock().unwrap();
            match state {
                Poll::Pending => stats.pending_polls += 1,
                Poll::Ready(_) => stats.completed_polls += 1,
                _ => {}
            }
        }
        f(state)
    }

    /// Cancels a query: `false` if the tenant has no such query (or it was cancelled already).
    pub(crate) fn delete(&self, tenant: i64, token: &str) -> bool {
        let mut queries = self.queries.lock().unwrap();
        match queries.get_mut(token) {
            Some(q) if q.tenant == tenant && !q.deleted => {
                q.deleted = true;
                self.stats.lock().unwrap().deleted += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `token` is still wanted (not cancelled).
    pub(crate) fn live(&self, token: &str) -> bool {
        self.queries.lock().unwrap().get(token).is_some_and(|q| !q.deleted)
    }

    pub(crate) fn stats(&self) -> ReportQueryStats {
        self.stats.lock().unwrap().clone()
    }

    pub(crate) fn reset_stats(&self) {
        *self.stats.lock().unwrap() = ReportQueryStats::default();
    }
}
