// Type-checked by scripts/test-node.sh (`tsc --noEmit`): the webhook types as a TypeScript user
// meets them, with Node's http and with Express.
import http from 'node:http'
import express from 'express'
import {
  Sandbox,
  WebhookReceiver,
  WebhookVerificationError,
  signWebhook,
  verifyWebhook,
  webhookHandler,
  type SandboxWebhookDelivery,
  type WebhookEvent,
  type WebhookReceipt,
} from 'servicetitan'

const key = process.env.ST_WEBHOOK_KEY ?? '0123456789abcdef0123456789abcdef'

async function onEvent(event: WebhookEvent): Promise<void> {
  const id: string = event.id
  const time: string | null = event.time
  console.log(id, event.type, time, event.data)
}

const app = express()
app.post('/servicetitan/webhooks', webhookHandler({ key, onEvent, redisUrl: process.env.ST_REDIS_URL }))

const receiver = new WebhookReceiver({ key, signatureHeader: 'X-ServiceTitan-Signature', dedupeTtlMs: 86_400_000 })
const server = http.createServer(
  webhookHandler({ receiver, onEvent, onError: (err: unknown, event: WebhookEvent | null) => console.error(err, event?.id) }),
)

async function main(): Promise<void> {
  const body = Buffer.from('{"specversion":"1.0","id":"1","source":"s","type":"t","data":{}}')
  const headers = { 'x-servicetitan-signature': signWebhook(body, key, { encoding: 'base64' }) }
  try {
    const event: WebhookEvent = verifyWebhook(body, headers, key, { encoding: 'any' })
    console.log(event.source)
  } catch (err) {
    if (!(err instanceof WebhookVerificationError)) throw err
    const code: 'webhook' = WebhookVerificationError.code
    console.log(code, err.message)
  }
  const receipt: WebhookReceipt = await receiver.receive(body, headers)
  if (receipt.event !== null) await receiver.release(receipt.event)

  const sandbox = new Sandbox({ webhookTimeScale: 0.01 })
  const id: number = sandbox.registerWebhook({ url: 'http://127.0.0.1:9000/hooks', key, tenantId: 1001 })
  const eventId: string = sandbox.sendWebhookEvent({ type: 'tn.test.ping', data: { id } })
  const deliveries: SandboxWebhookDelivery[] = sandbox.webhookDeliveries()
  console.log(eventId, deliveries.map((d) => d.attempts.length), sandbox.replayWebhook(eventId))
  sandbox.clearWebhooks()
  await sandbox.close()
  server.close()
}

void main
