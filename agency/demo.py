"""The demo: one real campaign through the HTTP API of a running stack, approval included.

It plays the client: starts a campaign, shows progress, reviews the generated content as a
person would (through the API), waits for publishing and measurement, then prints the report.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx

from agency.contracts import CampaignPhase
from agency.inference import TritonInference
from agency.model_status import model_server_status, render_status
from agency.settings import Settings

# Demo timings: the workflow waits seconds where production waits hours (set before the stack starts).
DEMO_ENV = {
    "AGENCY_METRICS_INTERVAL_S": "2",
    "AGENCY_METRICS_ROUNDS": "3",
    "AGENCY_APPROVAL_REMINDER_S": "120",
    "AGENCY_APPROVAL_TIMEOUT_S": "600",
    "AGENCY_GENERATION_MAX_TOKENS": "120",
    "AGENCY_REALLOCATION_DECISION_TIMEOUT_S": "120",
}
# The demo tenant's three years of weekly history (simulated with known truth): the market model
# is fitted on it, so the budget split comes from the tenant's own data.
DEMO_HISTORY_SEED = 7
DEMO_HISTORY_WEEKLY_SPEND = 3_000.0

PHASES = [
    CampaignPhase.PLANNING,
    CampaignPhase.BUDGETING,
    CampaignPhase.SCHEDULING,
    CampaignPhase.GENERATING,
    CampaignPhase.AWAITING_APPROVAL,
    CampaignPhase.PUBLISHING,
    CampaignPhase.MEASURING,
    CampaignPhase.REPORTING,
    CampaignPhase.COMPLETED,
]
CLOSED = {"completed", "cancelled", "failed"}
DEMO_TENANT = "northwind-outdoor"


def demo_brief(today: date) -> dict:
    start = today + timedelta(days=7)
    return {
        "name": "Trailblaze winter launch",
        "product": "Trailblaze waterproof hiking boots",
        "audience": "weekend hikers aged 25-45 who hike in wet weather",
        "goals": ["drive online sales of the new boot", "grow newsletter signups"],
        "channels": ["blog", "social", "email"],
        "total_budget": "6000.00",
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=13)).isoformat(),
        "key_claims": ["waterproof for 8 hours of rain", "free returns for 60 days"],
    }


# The demo tenant's brand profile (PUT /v1/brand): every draft is checked against it.
DEMO_BRAND = {
    "voice": "warm, practical and plain-spoken; talks like a hiking friend, never like an ad",
    "vocabulary_use": ["trail", "dry feet", "weekend"],
    "vocabulary_avoid": ["cheap", "revolutionary", "game-changer", "best in the world"],
    "claims_needing_substantiation": ["waterproof", "free returns"],
    "personas": [
        {"name": "Weekend hiker", "description": "hikes most weekends, in any weather, aged 25-45",
         "needs": ["dry feet on long wet trails", "boots that need no breaking in"]},
    ],
}


class DemoFailed(Exception):
    pass


def _progress(view: dict, started: float) -> str:
    phase = view["phase"]
    index = next((i for i, p in enumerate(PHASES) if p.value == phase), 0) + 1
    bar = "#" * index + "-" * (len(PHASES) - index)
    states: dict[str, int] = {}
    for item in view["items"]:
        states[item["approval_state"]] = states.get(item["approval_state"], 0) + 1
    items = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "-"
    paused = " (paused)" if view.get("paused") else ""
    return f"[{time.monotonic() - started:6.1f}s] [{bar}] {phase}{paused} | items: {items}"


def _print_content(content: list[dict]) -> None:
    for item in content:
        findings = item["compliance"].get("findings", [])
        print(f"\n--- {item['item_id']} ({item['format']}, {item['publish_on']}) [{item['approval_state']}]")
        print(f"    model: {item['model']}, {item['completion_tokens']} tokens, attempt {item['version']}")
        if item["title"]:
            print(f"    title: {item['title']}")
        for line in item["body"].splitlines() or [""]:
            print(f"    | {line}")
        for finding in findings:
            print(f"    ! {finding['severity']}: {finding['rule']}: {finding['message']}")


def run_demo(settings: Settings, *, poll_s: float = 0.5, timeout_s: float = 900) -> int:
    try:
        return _run(settings, poll_s=poll_s, timeout_s=timeout_s)
    except (DemoFailed, httpx.HTTPError) as err:
        print(f"\ndemo failed: {err}", file=sys.stderr)
        return 1


def _generation_count(settings: Settings) -> int:
    async def count() -> int:
        client = TritonInference(settings.triton_grpc_target)
        try:
            return await client.inference_count("content_generator")
        finally:
            await client.close()

    return asyncio.run(count())


def sign_in_local_owner(settings: Settings, base_url: str, tenant: str) -> str:
    """Create a throwaway owner of ``tenant`` and log in as it over HTTP; its access token.

    Local and test stacks only: a real deployment's users are created by people
    (``agency users create``), never with a generated password.
    """
    if settings.environment not in ("local", "test"):
        raise DemoFailed("the demo signs in with a generated user, which only local mode allows")
    from agency.security.identities import create_user

    email = f"demo-owner-{secrets.token_hex(4)}@{tenant}.example"
    password = secrets.token_urlsafe(24)

    async def create(session) -> None:
        async with session.begin():
            await create_user(session, tenant_slug=tenant, email=email, role="owner", password=password)

    _in_database(settings, create)
    response = httpx.post(
        f"{base_url}/v1/auth/token",
        data={"grant_type": "password", "tenant": tenant, "username": email, "password": password},
        timeout=30,
    )
    if response.status_code != 200:
        raise DemoFailed(f"sign-in as {email} -> {response.status_code}: {response.text}")
    return response.json()["access_token"]


def _in_database(settings: Settings, work):
    """Run ``await work(session)`` against the stack's database; its result."""
    from agency.db.session import create_engine, resolve_database_url, session_factory

    async def run():
        engine = create_engine(resolve_database_url(settings))
        try:
            async with session_factory(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _verify_audit_chain(settings: Settings):
    from agency.security.audit import verify_audit_log

    return _in_database(settings, verify_audit_log)


def _run(settings: Settings, *, poll_s: float, timeout_s: float) -> int:
    base = f"http://{settings.bind_host}:{settings.api_port}"
    generated_before = _generation_count(settings)
    token = sign_in_local_owner(settings, base, DEMO_TENANT)
    print(f"signed in as an owner of tenant {DEMO_TENANT} (POST /v1/auth/token)")
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as api:
        _upload_history(api, demo_brief(date.today())["channels"])
        _put_brand(api)
        _import_contacts(api, timeout_s=300)
        _sync_crm(api, timeout_s=300)
        response = api.post("/v1/campaigns", json=demo_brief(date.today()))
        if response.status_code != 202:
            raise DemoFailed(f"POST /v1/campaigns -> {response.status_code}: {response.text}")
        campaign_id = response.json()["campaign_id"]
        workflow_id = response.json()["workflow_id"]
        print(f"\ncampaign {campaign_id} accepted; following it through the API\n")

        started = time.monotonic()
        last_line = ""
        reviewer = InboxReviewer()
        decided_rounds: set[int] = set()
        view: dict = {}
        while time.monotonic() - started < timeout_s:
            view = api.get(f"/v1/campaigns/{campaign_id}").json()
            line = _progress(view, started)
            if line.split("] ", 2)[-1] != last_line.split("] ", 2)[-1]:
                print(line, flush=True)
                last_line = line
            if view["phase"] == CampaignPhase.AWAITING_APPROVAL.value and view["live"]:
                reviewer.review_inbox(api, campaign_id)
            pending = view.get("pending_reallocation")
            if pending and pending["round"] not in decided_rounds:
                decided_rounds.add(pending["round"])
                _decide_reallocation(api, campaign_id, pending)
            if view["status"] in CLOSED and not view["live"]:
                break
            time.sleep(poll_s)
        else:
            raise DemoFailed(f"campaign did not finish within {timeout_s:.0f}s (last phase {view.get('phase')})")

        if view["status"] != "completed":
            raise DemoFailed(f"campaign ended {view['status']}")
        print(_progress(view, started))

        content = api.get(f"/v1/campaigns/{campaign_id}/content").json()
        report = api.get(f"/v1/campaigns/{campaign_id}/report").json()
        allocation = api.get(f"/v1/campaigns/{campaign_id}/allocation").json()
        experiments = api.get(f"/v1/campaigns/{campaign_id}/experiments").json()
        tenant_report = _tenant_report(api, timeout_s=120)
        recommendations = api.get("/v1/content/recommendations")
        trail = api.get("/v1/audit", params={"limit": 200}).json()["events"]

    generated = _generation_count(settings) - generated_before
    print("\n==================== summary ====================")
    print(report["markdown"])
    print("\n==================== decisions ==================")
    _print_decisions(allocation, experiments)
    print("\n==================== content ====================")
    _print_content(content)
    print("\n==================== content strategy ===========")
    _print_strategy(view.get("calendar") or {}, recommendations)
    print("\n==================== content checks =============")
    content_failures = _content_figures(content)
    print("\n==================== where to look ==============")
    print(f"generations served by Triton's content_generator: {generated}")
    print("\nmodel server (agency models status):")
    print("  " + render_status(asyncio.run(model_server_status(settings))).replace("\n", "\n  "))
    print("\n==================== deliveries ================")
    delivery_failures = _print_deliveries(settings, campaign_id, content)
    chain = _verify_audit_chain(settings)
    print(f"audit chain:  {chain.records_checked} records, hash chain intact: {chain.ok}  (agency audit verify)")
    actors = sorted({e["actor"].split(":")[0] if e["actor"].startswith("user:") else e["actor"] for e in trail})
    print(f"audit trail:  {len(trail)} newest records of the tenant (GET /v1/audit), by {', '.join(actors)}")
    print(f"report:       {report['html_path']}")
    roi_dir = Path(report["html_path"]).parent
    print(f"ROI report:   {roi_dir / f'rpt_{campaign_id}.html'}  and  .pdf (charts; GET /v1/reports/rpt_{campaign_id})")
    print(f"tenant ROI:   {tenant_report['pdf_path']}  (POST /v1/reports, scope tenant)")
    print(f"API:          {base}/v1/campaigns/{campaign_id}   (docs: {base}/docs)")
    print(
        f"Temporal UI:  http://{settings.bind_host}:{settings.temporal_ui_port}"
        f"/namespaces/{settings.temporal_namespace}/workflows/{quote(workflow_id, safe='')}"
    )
    if generated < len(content):
        raise DemoFailed("fewer model generations than content items")
    if content_failures:
        raise DemoFailed("content checks failed: " + "; ".join(content_failures))
    if delivery_failures:
        raise DemoFailed("deliveries not exactly once: " + "; ".join(delivery_failures))
    if not chain.ok:
        raise DemoFailed(f"audit chain broken at record {chain.bad_record_id}: {chain.reason}")
    return 0


DEMO_CONTACT_ROWS = 2_000


def _import_contacts(api: httpx.Client, *, timeout_s: float) -> None:
    """A messy CSV of contacts (duplicates, bad emails, mixed phone formats) through the cleaning
    pipeline; the counts must add up and every quarantined row says why."""
    from agency.cleaning.messy import generate

    messy = generate(DEMO_CONTACT_ROWS, seed=11)
    response = api.post(
        "/v1/contacts/imports", params={"region": "US", "filename": "crm-export.csv"},
        content=messy.text.encode(), headers={"Content-Type": "text/csv"},
    )
    if response.status_code != 202:
        raise DemoFailed(f"POST /v1/contacts/imports -> {response.status_code}: {response.text}")
    import_id = response.json()["import_id"]
    deadline = time.monotonic() + timeout_s
    while (state := api.get(f"/v1/contacts/imports/{import_id}").json())["status"] not in ("completed", "failed"):
        if time.monotonic() > deadline:
            raise DemoFailed(f"contact import {import_id} did not finish in {timeout_s:.0f}s")
        time.sleep(0.5)
    if state["status"] != "completed":
        raise DemoFailed(f"contact import failed: {state['error']}")
    total = state["clean"] + state["merged"] + state["quarantined"]
    print(f"contact import (POST /v1/contacts/imports, {messy.rows} messy rows): {state['clean']} clean + "
          f"{state['merged']} merged + {state['quarantined']} quarantined = {total}")
    held = api.get(f"/v1/contacts/imports/{import_id}/quarantine", params={"limit": 200}).json()["rows"]
    reasons = Counter(f"{r['field']}: {r['code']}" for row in held for r in row["reasons"])
    print("  quarantine reasons (first page): " + ", ".join(f"{k} x{n}" for k, n in reasons.most_common(5)))
    if total != messy.rows or any(not row["reasons"] for row in held):
        raise DemoFailed("contact import counts do not add up, or a quarantined row has no reason")


def _sync_crm(api: httpx.Client, *, timeout_s: float) -> None:
    """Start the tenant's CRM sync and wait for its first full round (our contacts into HubSpot)."""
    response = api.post("/v1/sync/crm", json={"interval_s": 30})
    if response.status_code not in (200, 202):
        raise DemoFailed(f"POST /v1/sync/crm -> {response.status_code}: {response.text}")
    deadline = time.monotonic() + timeout_s
    while (state := api.get("/v1/sync/crm").json()).get("rounds", 0) < 1:
        if time.monotonic() > deadline:
            raise DemoFailed(f"the CRM sync did not finish a round in {timeout_s:.0f}s")
        time.sleep(0.5)
    totals = state.get("totals", {})
    print(f"CRM sync (CrmSyncWorkflow, POST /v1/sync/crm) round {state['rounds']}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(totals.items()) if v) + f"; pending conflicts {state['pending_conflicts']}")


def _print_deliveries(settings: Settings, campaign_id: str, content: list[dict]) -> list[str]:
    """Where each approved item went, counted on the provider side; exactly once or a failure."""
    approved = {c["item_id"]: c["format"] for c in content if c["approval_state"] == "approved"}
    headers = {"Authorization": f"Bearer {settings.channel_token.get_secret_value()}"}
    with httpx.Client(base_url=settings.channel_url, headers=headers, timeout=30) as sandbox:
        posts = sandbox.get("/v1/posts", params={"campaign_id": campaign_id}).json()["data"]
        requests = {
            face: sandbox.get(f"/_sandbox/requests/{face}").json()["counts"]
            for face in ("wordpress", "x", "linkedin", "instagram", "resend", "google-ads", "ga4")
        }
    per_item = Counter(p["item_id"] for p in posts)
    for fmt in sorted(set(approved.values())):
        items = [i for i, f in approved.items() if f == fmt]
        print(f"  {fmt:18s} {len(items)} approved, {sum(per_item[i] for i in items)} delivered")
    for face, counts in requests.items():
        print(f"  {face:10s} received " + ", ".join(f"{k} x{n}" for k, n in counts.items()))
    return [f"{item} delivered {per_item[item]} times" for item in approved if per_item[item] != 1]


def _put_brand(api: httpx.Client) -> None:
    response = api.put("/v1/brand", json=DEMO_BRAND)
    if response.status_code not in (200, 201):
        raise DemoFailed(f"PUT /v1/brand -> {response.status_code}: {response.text}")
    print(f"brand profile version {response.json()['version']} in force (PUT /v1/brand): "
          f"avoid {', '.join(DEMO_BRAND['vocabulary_avoid'])}")


class InboxReviewer:
    """The demo's reviewer, working through the approval inbox (GET/POST /v1/approvals).

    Approves clean copy; rejects copy the checks warned about, with the warning as the reason, and
    one X post with a reviewer's own reason (each is redrafted with its reason and comes back);
    edits one email (adds the free-returns line the brief approved) and approves the edit. A
    redraft is approved whatever it says, so the demo ends.
    """

    def __init__(self) -> None:
        self.decided: set[tuple[str, int]] = set()
        self.rejected: set[str] = set()
        self.edited = False

    def review_inbox(self, api: httpx.Client, campaign_id: str) -> None:
        inbox = api.get("/v1/approvals", params={"campaign_id": campaign_id, "limit": 100})
        if inbox.status_code != 200:
            raise DemoFailed(f"GET /v1/approvals -> {inbox.status_code}: {inbox.text}")
        items = [i for i in inbox.json()["items"] if (i["item_id"], i["version"]) not in self.decided]
        if not items:
            return
        print(f"\napproval inbox: {len(items)} item(s) to review (GET /v1/approvals)")
        _print_content([
            {**i, "approval_state": "pending", "completion_tokens": "-", "compliance": {"findings": i["findings"]}}
            for i in items
        ])
        print()
        for item in items:
            self.decided.add((item["item_id"], item["version"]))
            action = self._decide(item)
            result = api.post(f"/v1/approvals/{quote(item['item_id'], safe='')}", json=action)
            if result.status_code == 422 and action["action"] == "edit":
                # The edit broke a rule (the answer names it): approve the draft as it was instead.
                print(f"  edit refused ({result.json()['error']['message'][:120]}); approving the draft")
                action = {"action": "approve", "reason": "edit refused by the checks"}
                result = api.post(f"/v1/approvals/{quote(item['item_id'], safe='')}", json=action)
            if result.status_code not in (200, 409):  # 409: decided or expired meanwhile
                raise DemoFailed(f"review of {item['item_id']} -> {result.status_code}: {result.text}")
            print(f"  {action['action']:7s} {item['item_id']} v{item['version']}  ({action.get('reason', '')})")

    def _decide(self, item: dict) -> dict:
        warnings = [f for f in item["findings"] if f["severity"] == "warn"]
        if warnings and item["item_id"] not in self.rejected:
            self.rejected.add(item["item_id"])
            return {"action": "reject", "reason": f"{warnings[0]['message']} ({warnings[0]['rule']})"}
        if item["format"] == "x_post" and not self.rejected:
            # The reviewer wants the persona's need in the post: the redraft gets this reason.
            self.rejected.add(item["item_id"])
            return {"action": "reject", "reason": "Say that the boots keep feet dry on long wet trails"}
        if item["format"] == "email" and not self.edited and item["item_id"] not in self.rejected:
            self.edited = True
            body = item["body"].rstrip() + "\n\nAnd if they don't fit: free returns for 60 days."
            return {"action": "edit", "reason": "added the free-returns promise", "title": item["title"], "body": body}
        reason = "redraft approved" if item["item_id"] in self.rejected else "clean copy"
        return {"action": "approve", "reason": reason}


def _print_strategy(calendar: dict, recommendations: httpx.Response) -> None:
    """The calendar's messages and why (GET /v1/campaigns/{id}), and what the analysis of this
    campaign's results recommends for the next one (GET /v1/content/recommendations)."""
    for message in calendar.get("messages", []):
        print(f"message {message['message_id'].rsplit(':', 1)[-1]}: {message['message']}  (CTA: {message['cta']})")
    for line in calendar.get("rationale", []):
        print(f"  - {line}")
    if recommendations.status_code != 200:
        print(f"no performance analysis yet ({recommendations.status_code})")
        return
    found = recommendations.json()
    items = found["summary"].get("items", 0)
    print(f"performance analysis of {items} published item(s) (GET /v1/content/recommendations):")
    for rec in found["recommendations"][:5] or [{"text": "no finding yet: too little data to be confident"}]:
        print(f"  {rec['text']}")


def _content_figures(content: list[dict]) -> list[str]:
    """Issue 6's content checks on the final drafts, counted; returns what failed.

    A draft the checks still refused after its regeneration rounds is blocked: never offered for
    approval, never published. That is the checks working, so it is reported, and only the drafts
    offered to people must pass; a campaign that loses more than a quarter of its drafts fails.
    """
    from agency.agents.relevance import OFF_TOPIC_THRESHOLD

    drafted = [c for c in content if c["model"].startswith("content_generator") or c["generation"].get("edited_by")]
    blocked = [c for c in drafted if c["approval_state"] == "blocked"]
    offered = [c for c in drafted if c["approval_state"] != "blocked"]
    passed = [c for c in offered if c["compliance"].get("passed")]
    findings = [f for c in offered for f in c["compliance"].get("findings", [])]
    pii = [f for f in findings if f["rule"].startswith("pii.")]
    banned = [f for f in findings if "banned" in f["rule"]]
    print(f"items: {len(drafted)}; blocked by the checks (never offered or published): {len(blocked)}")
    for c in blocked:
        rules = ", ".join(f["rule"] for f in c["compliance"].get("findings", []) if f["severity"] == "block")
        print(f"  blocked {c['item_id']} ({c['format']}): {rules}")
    print(f"offered for approval: {len(offered)}; pass their format validator: {len(passed)}/{len(offered)} "
          f"({len(passed) / max(1, len(offered)):.0%}); PII findings: {len(pii)}; banned-word findings: {len(banned)}")
    similarities: dict[str, list[float]] = {}
    for c in offered:
        rounds = c["generation"].get("rounds") or []
        if not rounds:
            continue
        last = rounds[-1]
        winner = next(x for x in last["candidates"] if x["variant"] == last["winner"])
        if winner["relevance"] is not None:
            similarities.setdefault(c["format"], []).append(winner["relevance"])
    print(f"similarity of each offered item to its campaign message and brief (embeddings; threshold "
          f"{OFF_TOPIC_THRESHOLD:.2f}):")
    for fmt, values in sorted(similarities.items()):
        print(f"  {fmt:18s} {len(values):2d} items  min {min(values):.2f}  mean {sum(values) / len(values):.2f}")
    calls = [(len(r["candidates"]), i) for c in drafted for i, r in enumerate(c["generation"].get("rounds") or [])]
    regenerated = sum(n for n, i in calls if i > 0)
    print(f"model calls for these drafts: {sum(n for n, _ in calls)} ({regenerated} in regeneration rounds)")
    failures = []
    if len(passed) < len(offered):
        failures.append(f"{len(offered) - len(passed)} offered item(s) fail their validator")
    if pii or banned:
        failures.append(f"{len(pii)} PII and {len(banned)} banned-word finding(s)")
    low = [v for values in similarities.values() for v in values if v < OFF_TOPIC_THRESHOLD]
    if low:
        failures.append(f"{len(low)} offered item(s) below the similarity threshold")
    if len(blocked) * 4 > len(drafted):
        failures.append(f"{len(blocked)} of {len(drafted)} drafts blocked")
    return failures


def _upload_history(api: httpx.Client, channels: list[str]) -> None:
    from agency.mmm.history import api_rows, tenant_market
    from agency.mmm.simulator import simulate

    spec = tenant_market(channels, weekly_spend_total=DEMO_HISTORY_WEEKLY_SPEND, seed=DEMO_HISTORY_SEED)
    rows = api_rows(simulate(spec))
    response = api.put("/v1/market/weeks", json={"weeks": rows})
    if response.status_code != 200:
        raise DemoFailed(f"PUT /v1/market/weeks -> {response.status_code}: {response.text}")
    print(f"uploaded {len(rows)} weeks of marketing history (PUT /v1/market/weeks; simulated, seed {DEMO_HISTORY_SEED})")


def _decide_reallocation(api: httpx.Client, campaign_id: str, pending: dict) -> None:
    """The demo's marketing lead approves a reallocation the agent could not apply on its own."""
    print(f"\nbudget reallocation waiting for approval (round {pending['round']}, largest share change "
          f"{pending['change']:.1%}):")
    for channel, before in pending["before_cents"].items():
        print(f"  {channel:8s} ${before / 100:>10,.2f} -> ${pending['after_cents'][channel] / 100:>10,.2f}")
    result = api.post(
        f"/v1/campaigns/{campaign_id}/reallocations",
        json={"round": pending["round"], "decision": "approve", "note": "demo: follow the measured returns"},
    )
    if result.status_code not in (200, 409):  # 409: it expired or was decided meanwhile
        raise DemoFailed(f"reallocation decision -> {result.status_code}: {result.text}")
    print(f"  approve -> {result.status_code} (POST /v1/campaigns/{{id}}/reallocations)\n")


def _tenant_report(api: httpx.Client, *, timeout_s: float) -> dict:
    response = api.post("/v1/reports", json={"scope": "tenant"})
    if response.status_code != 202:
        raise DemoFailed(f"POST /v1/reports -> {response.status_code}: {response.text}")
    report_id = response.json()["report_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = api.get(f"/v1/reports/{report_id}").json()
        if view["status"] == "ready":
            pdf = api.get(view["pdf_url"])
            if pdf.status_code != 200 or not pdf.content.startswith(b"%PDF"):
                raise DemoFailed(f"GET {view['pdf_url']} -> {pdf.status_code}")
            return {**view, "pdf_path": f"{report_id}.pdf ({len(pdf.content):,} bytes via {view['pdf_url']})"}
        if view["status"] == "failed":
            raise DemoFailed(f"tenant report failed: {view['error']}")
        time.sleep(0.5)
    raise DemoFailed("tenant report not ready in time")


def _print_decisions(allocation: dict, experiments: list[dict]) -> None:
    market = allocation.get("market") or {}
    budget = allocation.get("budget") or {}
    print(f"market model: evidence {market.get('evidence', '-')}: {market.get('reason', '')}")
    print(f"budget ({budget.get('evidence', '-')}): {budget.get('method', '')}")
    for note in budget.get("notes", []):
        print(f"  {note}")
    for change in allocation.get("changes", []):
        print(f"reallocation round {change['round']}: {change['status']} (change {change['change']:.1%}, "
              f"by {change['decided_by'] or '-'})")
    for e in experiments:
        print(f"experiment {e['experiment_id']} [{e['mode']}, {e['metric']}]: {e['status']}"
              + (f", winner {e['winner']}" if e["winner"] else ""))
        print(f"  rule: {e['threshold']}")
        print(f"  {e['reason']}")


def apply_demo_environment() -> None:
    """Demo timings unless the user set their own; children of the stack inherit them."""
    for name, value in DEMO_ENV.items():
        os.environ.setdefault(name, value)
