//! A tenant: the handle every call starts from; it carries the tenant's credentials, token source and limiter key.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use reqwest::Method;

use crate::auth::TokenSource;
use crate::client::ClientInner;
use crate::error::Error;
use crate::paging::{Export, Paginate};
use crate::request::RequestBuilder;

/// One tenant of a [`crate::Client`]. Cheap to clone.
///
/// Paths are relative to the tenant: `"crm/customers"` is
/// `{api}/crm/v2/tenant/{tenant}/customers`; `"telecom/v3/calls"` keeps its version; a path
/// starting with `/` is used as given, with `{tenant}` filled in. A path that would leave
/// this tenant's part of the API is refused with a `configuration` error before any request.
#[derive(Clone)]
pub struct Tenant {
    pub(crate) inner: Arc<TenantInner>,
}

pub(crate) struct TenantInner {
    pub(crate) client: Arc<ClientInner>,
    pub(crate) id: i64,
    /// Set when the credentials were refused; every call returns it before any request.
    pub(crate) invalid: Option<Error>,
    pub(crate) token: Arc<TokenSource>,
    pub(crate) limit_key: String,
}

impl TenantInner {
    pub(crate) fn report_limit_key(&self, report_id: i64) -> String {
        format!("report:{}:{}:{report_id}", self.client.app_tag, self.id)
    }
}

impl Tenant {
    /// The tenant id.
    pub fn id(&self) -> i64 {
        self.inner.id
    }

    /// A call with any method, for bindings and uncommon methods.
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// use servicetitan::Method;
    /// let body = tenant
    ///     .request(Method::GET, "crm/customers")
    ///     .query_pairs([("page", "1"), ("active", "Any")])
    ///     .send_bytes()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn request(&self, method: Method, path: impl Into<String>) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, path.into())
    }

    /// A GET.
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// let customer: serde_json::Value = tenant.get("crm/customers/42").send().await?;
    /// # Ok(()) }
    /// ```
    pub fn get(&self, path: impl Into<String>) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A POST. Not resent after a 5xx, timeout or lost connection unless
    /// [`RequestBuilder::safe_to_retry`] says so (a 429 is always resent: it was not processed).
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// let created: serde_json::Value = tenant
    ///     .post("crm/customers")
    ///     .json(&serde_json::json!({"name": "Ada Lovelace", "type": "Residential"}))
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn post(&self, path: impl Into<String>) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A PUT.
    pub fn put(&self, path: impl Into<String>) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    /// A PATCH (not resent after a 5xx unless marked [`RequestBuilder::safe_to_retry`]).
    pub fn patch(&self, path: impl Into<String>) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    /// A DELETE.
    pub fn delete(&self, path: impl Into<String>) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Every record of a page-based list, as a stream (see [`Paginate`]).
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant) -> servicetitan::Result<()> {
    /// use futures::TryStreamExt;
    /// let mut customers = tenant
    ///     .paginate::<serde_json::Value>("crm/customers")
    ///     .page_size(500)
    ///     .active_any()
    ///     .into_stream();
    /// while let Some(customer) = customers.try_next().await? {
    ///     println!("{}", customer["id"]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn paginate<T>(&self, path: impl Into<String>) -> Paginate<T> {
        Paginate::new(self.clone(), path.into())
    }

    /// An export feed (`crm/customers` → `crm/v2/tenant/{t}/export/customers`) as a stream
    /// with a resumable checkpoint (see [`Export`]).
    ///
    /// ```no_run
    /// # async fn demo(tenant: servicetitan::Tenant, saved: Option<String>) -> servicetitan::Result<()> {
    /// use futures::TryStreamExt;
    /// let mut feed = tenant.export::<serde_json::Value>("crm/customers").since(saved).into_stream();
    /// while let Some(record) = feed.try_next().await? {
    ///     // store the record...
    /// }
    /// let checkpoint = feed.continue_from(); // save it: the next sync resumes here
    /// # Ok(()) }
    /// ```
    pub fn export<T>(&self, path: impl Into<String>) -> Export<T> {
        Export::new(self.clone(), path.into())
    }

    pub(crate) fn typed<T>(&self) -> PhantomData<fn() -> T> {
        PhantomData
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant").field("id", &self.inner.id).field("token", &self.inner.token).finish_non_exhaustive()
    }
}
