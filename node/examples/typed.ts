// Type-checked by scripts/test-node.sh (`tsc --noEmit`): the public types as a TypeScript user
// meets them. Not run; test/quickstart.test.js runs the README's JavaScript quick start.
import {
  Client,
  Sandbox,
  ServiceTitanError,
  NotFoundError,
  RateLimitError,
  ConfigurationError,
  type ClientOptions,
  type ClientStats,
  type LogRecord,
  type SandboxStats,
} from 'servicetitan'

interface Customer {
  id: number
  name: string
  active: boolean
}

async function main(): Promise<void> {
  const sandbox = new Sandbox({ rateLimit: false, records: 100, tenants: [{ id: 1, clientId: 'c', clientSecret: 's' }] })
  const options: ClientOptions = {
    appKey: sandbox.appKey,
    authUrl: sandbox.authUrl,
    apiUrl: sandbox.apiUrl,
    rateLimit: { calls: 60, periodMs: 1000, marginMs: 100 },
    reportRateLimit: false,
    backoff: { baseMs: 250, maxMs: 20_000 },
    timeoutMs: 60_000,
    logger: (record: LogRecord) => console.error(record.level, record.message),
  }
  const client = new Client(options)
  const fromEnv: Client = Client.fromEnv()
  void fromEnv
  const [first] = sandbox.tenants
  const tenant = client.tenant(first.id, { clientId: first.clientId, clientSecret: first.clientSecret })

  const controller = new AbortController()
  const page = await tenant.get<{ data: Customer[]; hasMore: boolean }>('crm/customers', {
    params: { page: 1, pageSize: 50, active: 'Any', ids: [1, 2], modifiedOnOrAfter: new Date(0) },
    signal: controller.signal,
  })
  const names: string[] = page.data.map((c) => c.name)

  for await (const customer of tenant.paginate<Customer>('crm/customers', { pageSize: 500 })) {
    names.push(customer.name)
  }

  const feed = tenant.export<Customer>('crm/customers', { since: null, signal: AbortSignal.timeout(60_000) })
  for await (const record of feed) {
    const active: boolean = record.active
    void active
  }
  const checkpoint: string | null = feed.continueFrom

  const rows = await tenant.report('operations', 175, { parameters: { From: '2026-01-01', To: new Date() } })
  const revenue: unknown = rows[0]?.Revenue

  try {
    await tenant.post('crm/customers', { json: { name: 'Ada' }, safeToRetry: false })
  } catch (err) {
    if (err instanceof NotFoundError) {
      const status: number | null = err.status
      void status
    } else if (err instanceof RateLimitError) {
      const wait: number | null = err.retryAfter
      void wait
    } else if (err instanceof ConfigurationError) {
      const argument: string | null = err.argument
      void argument
    } else if (err instanceof ServiceTitanError) {
      const fields: [string, string | null, Record<string, string[]>, string | null] = [
        err.code,
        err.traceId,
        err.errors,
        err.url,
      ]
      void fields
    }
  }

  const stats: ClientStats = client.stats()
  const sent: number = stats.requests + stats.retries + stats.tokenFetches + stats.rateLimited + stats.throttleWaitMs
  const seen: SandboxStats = sandbox.stats()
  sandbox.addFault({ route: 'crm/*', status: 503, count: 2, retryAfter: '1' })
  console.log(names.length, checkpoint, revenue, sent, seen.tokenRequestsTotal)
  await sandbox.close()
}

void main()
