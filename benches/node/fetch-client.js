// What a Node user would write instead of this package: global fetch (undici) with their own
// client-credentials token handling (cached until a minute before expiry, one fetch shared by
// concurrent callers), the ST-App-Key header, and a plain loop over export pages.

class FetchTenant {
  constructor({ authUrl, apiUrl, appKey, tenantId, clientId, clientSecret }) {
    Object.assign(this, { authUrl, apiUrl, appKey, tenantId, clientId, clientSecret })
    this.token = null
    this.expiresAt = 0
    this.pending = null
  }

  async accessToken() {
    if (this.token && Date.now() < this.expiresAt) return this.token
    this.pending ??= (async () => {
      try {
        const res = await fetch(`${this.authUrl}/connect/token`, {
          method: 'POST',
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: this.clientId,
            client_secret: this.clientSecret,
          }),
        })
        if (!res.ok) throw new Error(`token request failed: ${res.status}`)
        const body = await res.json()
        this.token = body.access_token
        this.expiresAt = Date.now() + (body.expires_in - 60) * 1000
        return this.token
      } finally {
        this.pending = null
      }
    })()
    return this.pending
  }

  async get(path, params = {}) {
    const [module, ...rest] = path.split('/')
    const url = new URL(`${this.apiUrl}/${module}/v2/tenant/${this.tenantId}/${rest.join('/')}`)
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v))
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${await this.accessToken()}`, 'st-app-key': this.appKey },
    })
    if (!res.ok) throw new Error(`GET ${url} failed: ${res.status}`)
    return JSON.parse(await res.text())
  }

  async *export(path) {
    const [module, ...rest] = path.split('/')
    let from
    for (;;) {
      const page = await this.get(`${module}/export/${rest.join('/')}`, from ? { from } : {})
      yield* page.data
      if (!page.hasMore) return
      from = page.continueFrom
    }
  }
}

module.exports = { FetchTenant }
