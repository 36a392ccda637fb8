// Type-checked by scripts/test-node.sh (`tsc --noEmit`) and by test/operations.test.js, which
// also checks that mistakes in it fail: the typed API, 24 operations in 14 modules.
import { Client, Sandbox, type Page } from 'servicetitan'
import type { CreateCustomerRequest, CustomerAddress, CustomerResponse } from 'servicetitan/api/crm'

export async function tour(client: Client): Promise<Record<string, unknown>> {
  const tenant = client.tenant(1001, { clientId: 'cid.sandbox.1001', clientSecret: 'cs1.sandbox-secret-1001' })
  const signal = AbortSignal.timeout(30_000)
  const out: Record<string, unknown> = {}

  const page: Page<CustomerResponse> = await tenant.crm.customers.getList({ pageSize: 5, active: 'Any', includeTotal: true })
  const first: CustomerResponse = page.data[0]
  const name: string = (await tenant.crm.customers.get({ id: first.id }, { signal })).name
  out.customer = name
  out.total = page.totalCount
  const active: string[] = []
  for await (const c of tenant.crm.customers.getList({ pageSize: 500 })) if (c.active) active.push(c.name)
  out.active = active

  const address: CustomerAddress = { street: '1 Main St', city: 'Springfield', state: 'IL', zip: '62701', country: 'US' }
  const body: CreateCustomerRequest = { name: 'Ada Lovelace', type: 'Residential', address, locations: [{ name: 'Home', address }] }
  const createdId: number = (await tenant.crm.customers.create({ body })).id
  out.locations = (await tenant.crm.locations.getList({ customerId: createdId })).data.map((l) => l.id)

  const feed = tenant.crm.exportCustomers.getCustomers({ since: new Date('2026-01-01') })
  let exported = 0
  for await (const record of feed) exported += record.id > 0 ? 1 : 0
  out.exported = exported
  out.checkpoint = feed.continueFrom

  const jobNumbers: string[] = (await tenant.jpm.jobs.getList({ pageSize: 3 })).data.map((j) => j.jobNumber)
  out.jobs = jobNumbers
  out.appointment = (await tenant.jpm.appointments.get({ id: 1 })).start
  out.invoices = (await tenant.accounting.invoices.getList({ pageSize: 2 })).data.map((i) => i.id)
  out.apBill = await tenant.accounting.apBills.getById({ billId: 1 })
  out.units = (await tenant.settings.businessUnits.getList()).data.map((b) => b.name)
  out.employees = (await tenant.settings.employees.getList({ pageSize: 2 })).data.map((e) => e.name)
  out.technicians = (await tenant.settings.technicians.getList({ pageSize: 2 })).data.map((t) => t.name)
  out.arrivalWindows = (await tenant.dispatch.arrivalWindows.getList()).data.length
  out.equipmentTypes = (await tenant.equipmentSystems.equipmentTypes.getList()).data.length
  out.estimates = (await tenant.salestech.estimates.getList({ pageSize: 2 })).data.length
  out.memberships = (await tenant.memberships.customerMemberships.getList()).data.length
  out.categories = (await tenant.pricebook.categories.getList()).data.length
  out.reportCategories = (await tenant.reporting.reportCategories.getCategories()).data.length
  out.calls = (await tenant.telecom.calls.getCalls({ pageSize: 2, ids: [1, 2] })).data.length
  const recording: Buffer = await tenant.telecom.calls.getRecording({ id: 1 })
  out.recording = recording.length
  out.campaigns = (await tenant.marketing.campaignCategories.getList()).data.length
  out.reviews = (await tenant.marketingReputation.reviews({ pageSize: 2, reportType: 1 })).data.length
  out.tasks = (await tenant.taskManagement.tasks.getTasks()).data.length
  out.activities = (await tenant.timesheets.activitiesControllers.getList()).data.length
  return out
}

export function sandboxClient(sandbox: Sandbox): Client {
  return new Client({ appKey: sandbox.appKey, authUrl: sandbox.authUrl, apiUrl: sandbox.apiUrl })
}
