//! Operations by name (`crm.customers.getList`): the wrapper's `tenant.crm.customers.getList(
//! { pageSize: 5 })` (node/operations.js) comes here with the parameters and body as JSON text
//! made by its converter; the engine checks them against the operation before anything is sent.

use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::Env;
use napi_derive::napi;
use serde_json::Value;
use servicetitan::operations::OperationCall;

use crate::cancel::{token, Canceller};
use crate::client::{call_span, NativeTenant};
use crate::error::{configuration_for, engine};
use crate::guard;
use crate::json;
use crate::stream::NativeRecordStream;

impl NativeTenant {
    /// The engine's call of `name` with `params` (an object of the API's names) and `body`.
    fn operation_call(&self, name: &str, params: Option<String>, body: Option<String>) -> napi::Result<OperationCall> {
        let args = match params.map(|text| json::parse(&text, "params")).transpose()? {
            None | Some(Value::Null) => Default::default(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(configuration_for("params", "invalid params: expected an object of name → value")),
        };
        let body = body.map(|text| json::parse(&text, "body")).transpose()?;
        Ok(self.inner.operation(name).args(args).json_value(body))
    }
}

#[napi]
impl NativeTenant {
    /// Calls an operation by name; resolves with the answer's bytes (one page, for a list).
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn operation<'env>(
        &self,
        env: &'env Env,
        name: String,
        params: Option<String>,
        body: Option<String>,
        canceller: Option<&Canceller>,
    ) -> napi::Result<PromiseRaw<'env, Buffer>> {
        guard::sync(|| {
            let call = self.operation_call(&name, params, body)?;
            let send = async move {
                let bytes = call.send_bytes().await.map_err(|e| engine(&e))?;
                Ok(Buffer::from(Vec::from(bytes)))
            };
            guard::spawn(env, token(canceller), call_span(&self.logger), send)
        })
    }

    /// Every record of a list operation (from its `page`) or an export (from its `since`).
    #[napi]
    pub fn operation_records(&self, name: String, params: Option<String>) -> napi::Result<NativeRecordStream> {
        guard::sync(|| {
            let records = self.operation_call(&name, params, None)?.raw_records().map_err(|e| engine(&e))?;
            Ok(NativeRecordStream::new(records, call_span(&self.logger)))
        })
    }
}
