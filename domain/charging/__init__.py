"""The charging domain: EVSE master data, live status and Search EVSE (DOMAIN.md §3, §9).

Master data arrives by upload (endpoints/evse_upload) or by a pull from the operator's CLM;
both go through :mod:`domain.charging.master_data`, so a full load or a delta means the same
thing whatever its source. Live status (:mod:`domain.charging.status`) is kept apart from
master data because it changes every few minutes and expires; :mod:`domain.charging.search`
holds the criteria rules and the geometry that the repository's index design relies on.
"""
