"""The console's changes (POST, CSRF-checked by the blueprint): edit a payload, reveal it,
replay (dry run, then confirmation), drop, purge and export. Each goes through the store's
and the replay code's public API, and names the console user in the audit log."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for

from cartsync.worker import keys
from cartsync.worker.cli.dlq.change import check_payload, contract_options, json_text, save_revision
from cartsync.worker.cli.dlq.session import new_run_id
from cartsync.worker.deadletters import AuditNote, Stored, replay_update_id
from cartsync.worker.replay import CHUNK, Replayer, Result, describe
from cartsync.worker.timefmt import parse_duration
from cartsync.worker.web.console.access import principal, require
from cartsync.worker.web.console.blueprint import bp
from cartsync.worker.web.console.context import console
from cartsync.worker.web.console.masking import mask, unmask
from cartsync.worker.web.console.query import cli_filters, iso, parse_query
from cartsync.worker.web.console.roles import Action, may
from cartsync.worker.web.console.selection import ACT_MAX, Selection, select
from cartsync.worker.web.console.views import letter_page, load_letter

#: Form fields that are not listing filters.
_NOT_FILTERS = ("csrf_token", "ids", "force", "reason_text", "older_than", "scope")


def by() -> str:
    who = principal()
    assert who is not None  # every view here is behind require()
    return who.audit_name


def form_selection() -> Selection:
    """The letters a bulk form names: ticked ids, or (``scope=filter``) its listing's filters."""
    ids = request.form.getlist("ids")
    if request.form.get("scope") == "filter":
        params = {k: v for k, v in request.form.items() if k not in _NOT_FILTERS}
        return select(console().store, [], params)
    if not ids:
        abort(400)
    return select(console().store, ids, None)


# -- reveal ------------------------------------------------------------------------------------


@bp.route("/letters/<letter_id>/reveal", methods=["POST"])
@require(Action.REVEAL)
def reveal(letter_id: str) -> tuple[str, int]:
    stored: Stored = load_letter(letter_id)
    letter = stored.letter
    console().store.record(
        AuditNote(
            "reveal",
            by(),
            new_run_id(),
            "payload shown",
            {"merchant": letter.merchant, "order_ref": letter.order_ref},
        ),
        letter.id,
    )
    return letter_page(letter_id, revealed=True)


# -- edit --------------------------------------------------------------------------------------


def edit_blocker(stored: Stored) -> str | None:
    """Why the letter may not be edited now: an interrupted replay of it is still enqueued
    (the CLI's ``dlq edit`` refuses the same)."""
    letter = stored.letter
    marker = keys.update(
        console().settings.key_prefix, replay_update_id(letter.id, letter.revision)
    )
    if console().client.exists(marker):
        return (
            "A replay of this letter was enqueued but did not finish: replay it again to "
            "finish it instead of editing."
        )
    return None


@bp.route("/letters/<letter_id>/edit", methods=["GET", "POST"])
@require(Action.EDIT)
def edit(letter_id: str) -> Any:
    c = console()
    stored: Stored = load_letter(letter_id)
    letter = stored.letter
    text = json_text(mask(letter.payload))
    problems: list[tuple[str, str]] = []
    blocker = edit_blocker(stored)
    if request.method == "POST" and blocker is None:
        text = request.form.get("payload", "")
        problems = save_edit(stored, text)
        if not problems:
            return redirect(url_for("console.letter", letter_id=letter.id, saved=1))
    status = 422 if problems else (409 if blocker else 200)
    return (
        render_template(
            "console/edit.html",
            letter=letter,
            text=text,
            problems=problems,
            blocker=blocker,
            masked=text != json_text(letter.payload) if not problems else True,
            settings=c.settings,
        ),
        status,
    )


def split_problem(line: str) -> tuple[str, str]:
    """A validation line ``path: message`` as (path, message); ('', line) without a path."""
    path, sep, message = line.partition(": ")
    if sep and path and " " not in path:
        return path, message
    return "", line


def save_edit(stored: Stored, text: str) -> list[tuple[str, str]]:
    """Check and save an edited (masked) payload as the CLI's ``dlq edit`` does; the problems
    as (path, message) pairs, none when saved."""
    import json

    from cartsync.tasks.producer import order_identity

    c = console()
    letter = stored.letter
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return [("", f"not JSON: {exc}")]
    restored, lost = unmask(parsed, letter.payload)
    if lost:
        return [(path, "a masked value with nothing behind it: type the value") for path in lost]
    if restored == letter.payload:
        return [("", "No changes: the payload is as it was.")]
    body, problems, _warnings = check_payload(
        json.dumps(restored, ensure_ascii=False),
        order_identity(letter.payload),
        contract_options(c.settings, letter.merchant),
        c.settings,
    )
    if problems:
        return [split_problem(line) for line in problems]
    _revision, outcome = save_revision(c.store, stored, body, by())
    if outcome != "replaced":
        what = "removed" if outcome == "gone" else "changed"
        return [("", f"The letter was {what} by someone else meanwhile; nothing was saved.")]
    return []


# -- replay ------------------------------------------------------------------------------------


def replayer(force: bool, run: str) -> Replayer:
    c = console()
    return Replayer(c.store, c.producer, by=by(), run=run, force=force)


@bp.route("/replay/plan", methods=["POST"])
@require(Action.REPLAY)
def replay_plan() -> str:
    """The dry run: what replaying the selection would do, letter by letter, and a form to
    confirm it (for exactly the letters planned)."""
    selection = form_selection()
    force = request.form.get("force") == "1"
    planner = replayer(force, new_run_id())
    rows = [(s.letter, planner.plan(s)) for s in selection.letters]
    counts = Counter(verdict.action for _, verdict in rows)
    return render_template(
        "console/replay_plan.html",
        selection=selection,
        rows=rows,
        counts=counts,
        force=force,
        act_max=ACT_MAX,
        cli=cli_filters(selection.query) if selection.query else "",
        planned_at=repr(time.time()),
    )


@bp.route("/replay", methods=["POST"])
@require(Action.REPLAY)
def replay() -> str:
    """Replay the letters a confirmed plan named, through worker/replay.py."""
    selection = form_selection()
    force = request.form.get("force") == "1"
    run = new_run_id()
    who = by()
    store = console().store
    store.record(AuditNote("replay", who, run, "started", {**selection.describe(), "force": force}))
    results: list[Result] = [Result(i, "skipped", "gone meanwhile") for i in selection.missing]
    worker = replayer(force, run)
    letters = selection.letters
    for start in range(0, len(letters), CHUNK):
        results.extend(worker.replay_many(letters[start : start + CHUNK]))
    counts = Counter(result.outcome for result in results)
    store.record(AuditNote("replay", who, run, "finished", dict(counts)))
    return render_template("console/replay_done.html", results=results, counts=counts, run=run)


# -- drop and purge ----------------------------------------------------------------------------


@bp.route("/drop/plan", methods=["POST"])
@require(Action.DROP)
def drop_plan() -> str:
    selection = form_selection()
    return render_template(
        "console/drop_plan.html", selection=selection, action="drop", act_max=ACT_MAX, error=None
    )


@bp.route("/drop", methods=["POST"])
@require(Action.DROP)
def drop() -> Any:
    return remove("drop")


@bp.route("/purge/plan", methods=["POST"])
@require(Action.PURGE)
def purge_plan() -> Any:
    """Letters older than ``older_than`` (and matching the listing's filters)."""
    selection, error = purge_selection()
    return render_template(
        "console/drop_plan.html",
        selection=selection,
        action="purge",
        act_max=ACT_MAX,
        error=error,
        older_than=request.form.get("older_than", ""),
    )


def purge_selection() -> tuple[Selection, str | None]:
    params = {k: v for k, v in request.form.items() if k not in _NOT_FILTERS}
    try:
        older = parse_duration(request.form.get("older_than", ""))
    except ValueError as exc:
        return Selection([], 0), str(exc)
    query = parse_query(params, time.time())
    cutoff = time.time() - older
    if query.filters.until is not None:
        cutoff = min(cutoff, query.filters.until)
    params["until"] = iso(cutoff)
    return select(console().store, [], params), None


@bp.route("/purge", methods=["POST"])
@require(Action.PURGE)
def purge() -> Any:
    return remove("purge")


#: Past tense of each deleting action, as the CLI writes it in the audit log.
_DONE = {"drop": "dropped", "purge": "purged"}


def remove(action: str) -> Any:
    """Delete the confirmed letters (by id) with the reason given, as the CLI's drop does."""
    reason = request.form.get("reason_text", "").strip()
    selection = select(console().store, request.form.getlist("ids"), None)
    if not reason:
        return (
            render_template(
                "console/drop_plan.html",
                selection=selection,
                action=action,
                act_max=ACT_MAX,
                error="Say why: the reason goes into the audit log.",
            ),
            422,
        )
    done = _DONE[action]
    run, who = new_run_id(), by()
    note = AuditNote(action, who, run, done, {"why": reason})
    items = [(stored, note.about(stored.letter, done), None) for stored in selection.letters]
    outcomes = console().store.remove_many(items, check=False)
    removed = outcomes.count("removed")
    console().store.record(
        AuditNote(action, who, run, f"{removed} {done}", {**selection.describe(), "why": reason})
    )
    return redirect(url_for("console.letters", done=f"{removed} letter(s) {done}."))


# -- export ------------------------------------------------------------------------------------


@bp.route("/export", methods=["POST"])
@require(Action.EXPORT)
def export() -> Response:
    """The selection as JSON Lines, one letter per line as ``cartsync dlq export`` writes it;
    payloads masked unless the role may reveal them. Recorded in the audit log."""
    selection = form_selection()
    who = principal()
    full = who is not None and may(who.role, Action.REVEAL)
    lines = []
    for stored in selection.letters:
        letter = stored.letter
        if not full:
            letter = replace(
                letter,
                payload=mask(letter.payload),
                history=[
                    {k: v for k, v in h.items() if k != "previous_payload"} for h in letter.history
                ],
            )
        lines.append(letter.to_json() + "\n")
    run = new_run_id()
    console().store.record(
        AuditNote(
            "export",
            by(),
            run,
            f"{len(lines)} exported",
            {**selection.describe(), "payloads": "full" if full else "masked"},
        )
    )
    return Response(
        "".join(lines),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="dead-letters-{run}.jsonl"'},
    )


def plan_words() -> dict[str, str]:
    return {"replay": "would replay", "refuse": "would refuse", "fail": "would fail"}


bp.add_app_template_global(plan_words, "plan_words")
bp.add_app_template_global(describe, "describe_letter")
