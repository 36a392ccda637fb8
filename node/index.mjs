// ES module entry: the CommonJS module's exports under their names, so that `require` and
// `import` hand out the very same classes (one `instanceof` world, one addon instance).
import cjs from './index.js'

export const {
  Client,
  Tenant,
  ExportFeed,
  Sandbox,
  ServiceTitanError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  BadRequestError,
  ConflictError,
  RateLimitError,
  ServerError,
  APITimeoutError,
  APIConnectionError,
  ConfigurationError,
  DecodeError,
  WebhookVerificationError,
  verifyWebhook,
  signWebhook,
  WebhookReceiver,
  webhookHandler,
  engineVersion,
} = cjs

export default cjs
