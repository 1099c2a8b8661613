"""The reader's dashboard: rates, availability, profile, waiting requests and recent readings."""

from __future__ import annotations

from aiohttp import web

from api.accounts import profiles
from api.accounts.readers import MAX_RATE_CENTS, RATE_COLUMN, missing_for_online
from api.core.keys import DATABASE, SETTINGS
from api.pages.readings import readings_of
from api.pages.rendering import page_auth, render


async def dashboard_page(request: web.Request) -> web.Response:
    auth = await page_auth(request, "reader")
    pool = request.app[DATABASE].pool
    rates = await pool.fetchrow("SELECT * FROM reader_rates WHERE reader_id = $1", auth.user.id)
    availability = await pool.fetchrow(
        "SELECT status, chosen_status FROM reader_availability WHERE reader_id = $1", auth.user.id)
    status = availability["status"] if availability else "offline"
    chosen = availability["chosen_status"] if availability else "offline"
    profile = await profiles.load(pool, auth.user.id)
    recent = await readings_of(pool, auth.user.id, 6)
    waiting = [{"id": r["id"], "clientName": r["other_name"], "sessionType": r["sessionType"],
                "rateCents": r["rateCents"], "requestedAt": r["requestedAt"]}
               for r in recent if r["status"] == "requested"]
    rate_data = {
        "chatCents": rates["chat_cents"] if rates else 0,
        "audioCents": rates["audio_cents"] if rates else 0,
        "videoCents": rates["video_cents"] if rates else 0,
        "messageCents": rates["message_cents"] if rates else 0,
        "flatCents": {m: (rates[f"flat_{m}_cents"] if rates else 0) for m in ("15", "30", "45", "60")},
    }
    # The onboarding checklist: what the reader must add before clients can see them online.
    missing = missing_for_online(rates or dict.fromkeys(RATE_COLUMN.values(), 0), auth.user.display_name)
    return await render(request, "dashboard.html", auth, script="dashboard", rates=rate_data,
                         availability=status, chosen=chosen, profile=profile, recent=recent, missing=missing,
                         data={"missing": missing,
                             "rates": rate_data, "status": status, "chosenStatus": chosen,
                             "profile": profile.public(),
                             "requests": waiting,
                             "requestExpirySeconds": request.app[SETTINGS].request_expiry_seconds,
                             "maxRateCents": MAX_RATE_CENTS, "maxFlatCents": MAX_RATE_CENTS * 60,
                         })


def setup(app: web.Application) -> None:
    app.router.add_get("/dashboard", dashboard_page)
