"""A tour of the typed API: 24 operations in 14 modules, checked by ``mypy --strict``
(test_operations.py checks it passes, and that a mistake in it fails)."""

from __future__ import annotations

from typing import Dict, List

import servicetitan as st
from servicetitan.api.crm import CreateCustomerRequest, CustomerAddress, CustomerResponse


def tour(tenant: st.Tenant) -> Dict[str, object]:
    out: Dict[str, object] = {}

    page = tenant.crm.customers.get_list(page_size=5, active="Any", include_total=True)
    first: CustomerResponse = page.data[0]
    name: str = tenant.crm.customers.get(first["id"])["name"]
    out["customer"] = name
    out["total"] = page.total_count
    out["active"] = [c["name"] for c in page if c["active"]]

    address: CustomerAddress = {
        "street": "1 Main St",
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
        "country": "US",
    }
    new: CreateCustomerRequest = {
        "name": "Ada Lovelace",
        "type": "Residential",
        "address": address,
        "locations": [{"name": "Home", "address": address}],
    }
    created_id: int = tenant.crm.customers.create(body=new)["id"]
    out["created"] = created_id

    location_ids: List[int] = [loc["id"] for loc in tenant.crm.locations.get_list(customer_id=created_id).data]
    out["locations"] = location_ids

    feed = tenant.crm.export_customers.get_customers(since="2026-01-01")
    out["exported"] = sum(1 for _ in feed)
    out["checkpoint"] = feed.continue_from

    job_numbers: List[str] = [job["jobNumber"] for job in tenant.jpm.jobs.get_list(page_size=3).data]
    out["jobs"] = job_numbers
    out["appointment"] = tenant.jpm.appointments.get(1)["start"]

    out["invoices"] = [inv["id"] for inv in tenant.accounting.invoices.get_list(page_size=2).data]
    out["ap_bill"] = tenant.accounting.ap_bills.get_by_id(1)

    out["units"] = [bu["name"] for bu in tenant.settings.business_units.get_list().data]
    out["employees"] = [e["name"] for e in tenant.settings.employees.get_list(page_size=2).data]
    out["technicians"] = [t["name"] for t in tenant.settings.technicians.get_list(page_size=2).data]

    out["arrival_windows"] = len(tenant.dispatch.arrival_windows.get_list().data)
    out["equipment_types"] = len(tenant.equipment_systems.equipment_types.get_list().data)
    out["estimates"] = len(tenant.salestech.estimates.get_list(page_size=2).data)
    out["memberships"] = len(tenant.memberships.customer_memberships.get_list().data)
    out["categories"] = len(tenant.pricebook.categories.get_list().data)
    out["report_categories"] = len(tenant.reporting.report_categories.get_categories().data)
    out["calls"] = len(tenant.telecom.calls.get_calls(page_size=2).data)
    out["recording"] = len(tenant.telecom.calls.get_recording(1))
    out["campaigns"] = len(tenant.marketing.campaign_categories.get_list().data)
    out["reviews"] = len(tenant.marketing_reputation.reviews(page_size=2).data)
    out["tasks"] = len(tenant.task_management.tasks.get_tasks().data)
    out["activities"] = len(tenant.timesheets.activities_controllers.get_list().data)
    return out


async def async_tour(tenant: st.AsyncTenant) -> List[str]:
    page = await tenant.crm.customers.get_list(page_size=5)
    names = [c["name"] async for c in page]
    customer = await tenant.crm.customers.get(page.data[0]["id"])
    names.append(customer["name"])
    feed = await tenant.jpm.export.jobs()
    names.extend([job["jobNumber"] async for job in feed])
    return names
