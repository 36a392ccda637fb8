//! [`TenantCredentials`]: a tenant id, client id and client secret, from arguments or the
//! environment.

use super::Secret;
use crate::error::{Error, Result};

/// One tenant's credentials: tenant id, client id and client secret (environment specific).
///
/// Two tenants may share one pair (Enterprise Hub); they then share one token.
///
/// ```
/// let creds = servicetitan::TenantCredentials::new(1234567, "cid.abc", "cs1.secret");
/// assert!(!format!("{creds:?}").contains("cs1.secret"));
/// ```
#[derive(Clone, Debug)]
pub struct TenantCredentials {
    pub(crate) tenant_id: i64,
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
}

impl TenantCredentials {
    /// Credentials from arguments. Checked when the tenant is made (see [`crate::Client::tenant`]).
    pub fn new(tenant_id: i64, client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        TenantCredentials { tenant_id, client_id: client_id.into(), client_secret: client_secret.into() }
    }

    /// Credentials from `ST_TENANT_ID`, `ST_CLIENT_ID` and `ST_CLIENT_SECRET`.
    pub fn from_env() -> Result<Self> {
        Self::resolve(None, None, None)
    }

    /// Each value from its argument, else its environment variable (`ST_TENANT_ID`,
    /// `ST_CLIENT_ID`, `ST_CLIENT_SECRET`); a `configuration` error names what is missing.
    pub fn resolve(tenant_id: Option<i64>, client_id: Option<String>, client_secret: Option<String>) -> Result<Self> {
        Self::resolve_with(tenant_id, client_id, client_secret, &|n| std::env::var(n).ok())
    }

    pub(crate) fn resolve_with(
        tenant_id: Option<i64>,
        client_id: Option<String>,
        client_secret: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let tenant_id = match tenant_id {
            Some(id) => id,
            None => match env("ST_TENANT_ID") {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| Error::configuration("ST_TENANT_ID", format!("{v:?} is not an integer")))?,
                None => {
                    return Err(Error::configuration("tenant_id", "no tenant id given and ST_TENANT_ID is not set"))
                }
            },
        };
        let client_id = client_id
            .or_else(|| env("ST_CLIENT_ID"))
            .ok_or_else(|| Error::configuration("client_id", "no client id given and ST_CLIENT_ID is not set"))?;
        let client_secret = client_secret.or_else(|| env("ST_CLIENT_SECRET")).ok_or_else(|| {
            Error::configuration("client_secret", "no client secret given and ST_CLIENT_SECRET is not set")
        })?;
        let creds = TenantCredentials::new(tenant_id, client_id, client_secret);
        creds.validate()?;
        Ok(creds)
    }

    /// The tenant id.
    pub fn tenant_id(&self) -> i64 {
        self.tenant_id
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.tenant_id <= 0 {
            return Err(Error::configuration(
                "tenant_id",
                format!("tenant ids are positive integers, got {}", self.tenant_id),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(Error::configuration("client_id", "the client id is empty"));
        }
        if self.client_secret.is_blank() {
            return Err(Error::configuration("client_secret", "the client secret is empty"));
        }
        Ok(())
    }
}
